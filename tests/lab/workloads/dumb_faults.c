/* CPU page faults on a KMS driver's dumb buffers, mapped through the card
 * (DRM_IOCTL_MODE_MAP_DUMB + mmap): the driver's fault handler runs under the faulting mm's
 * mmap_lock and locks the object's reservation (TTM's ttm_bo_vm_reserve: a trylock, and on
 * contention the retry path that drops mmap_lock before it waits; the shmem helpers'
 * drm_gem_shmem_fault). THREADS threads fault the same buffers at once, each through its own
 * mappings, made anew every round (pages of the card's mappings are inserted by the driver as
 * PFNs, which MADV_DONTNEED cannot zap) so every round faults again.
 *
 * Usage: dumb_faults DRIVER ROUNDS [THREADS]   (exit 2 when the driver has no card) */
#define _GNU_SOURCE
#include "kms.h"

#include <pthread.h>

#define BUFFERS 2
#define W 256
#define H 64

static int card, rounds;
static uint64_t offsets[BUFFERS];
static size_t size;
static pthread_barrier_t start;

static void *faulter(void *arg)
{
	long pages = 0, page = sysconf(_SC_PAGESIZE);

	pthread_barrier_wait(&start);
	for (int r = 0; r < rounds; r++) {
		for (int b = 0; b < BUFFERS; b++) {
			uint8_t *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, card,
					    (off_t)offsets[b]);

			if (map == MAP_FAILED)
				die("mmap of a dumb buffer");
			for (size_t off = 0; off < size; off += (size_t)page, pages++)
				map[off] = (uint8_t)(r + (intptr_t)arg);
			munmap(map, size);
		}
	}
	return (void *)pages;
}

int main(int argc, char **argv)
{
	if (argc < 3 || atoi(argv[2]) <= 0) {
		errno = 0;
		die("usage: %s DRIVER ROUNDS [THREADS]", argv[0]);
	}
	int threads = argc > 3 ? atoi(argv[3]) : 1;
	uint32_t handles[BUFFERS];
	pthread_t tids[16];
	long touched = 0;

	rounds = atoi(argv[2]);
	if (threads < 1 || threads > 16) {
		errno = 0;
		die("THREADS must be 1..16");
	}
	card = open_card(argv[1]);
	if (card < 0) {
		printf("dumb_faults: no %s card: %s\n", argv[1], strerror(errno));
		return 2;
	}
	for (int b = 0; b < BUFFERS; b++) {
		struct drm_mode_create_dumb bo = { .height = H, .width = W, .bpp = 32 };
		struct drm_mode_map_dumb m = { 0 };

		if (ioctl(card, DRM_IOCTL_MODE_CREATE_DUMB, &bo))
			die("DRM_IOCTL_MODE_CREATE_DUMB on %s", argv[1]);
		m.handle = handles[b] = bo.handle;
		if (ioctl(card, DRM_IOCTL_MODE_MAP_DUMB, &m))
			die("DRM_IOCTL_MODE_MAP_DUMB on %s", argv[1]);
		offsets[b] = m.offset;
		size = bo.size;
	}
	pthread_barrier_init(&start, NULL, (unsigned)threads);
	for (int t = 0; t < threads; t++)
		pthread_create(&tids[t], NULL, faulter, (void *)(intptr_t)t);
	for (int t = 0; t < threads; t++) {
		void *pages;

		pthread_join(tids[t], &pages);
		touched += (long)pages;
	}
	for (int b = 0; b < BUFFERS; b++) {
		struct drm_gem_close c = { .handle = handles[b] };
		ioctl(card, DRM_IOCTL_GEM_CLOSE, &c);
	}
	printf("dumb_faults: %s: %d thread(s) x %d round(s) x %d buffer(s) of %zu bytes: %ld page "
	       "touch(es), each in a new mapping\n", argv[1], threads, rounds, BUFFERS, size, touched);
	return 0;
}
