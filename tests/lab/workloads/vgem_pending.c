/* Fences that are still pending while user space uses the buffer: a vgem write fence is
 * attached to a buffer (vgem's own, or one vgem imported from udmabuf, the system heap or
 * another card), and before it is signalled
 *   - poll() on the dma-buf fd finds it unsignalled and installs fence callbacks (under the
 *     resv lock),
 *   - EXPORT_SYNC_FILE takes it out, and IMPORT_SYNC_FILE adds it to a second buffer (under
 *     that buffer's resv lock), whose poll() then waits for it too,
 *   - one thread blocks in poll() and another in DMA_BUF_IOCTL_SYNC (begin_cpu_access waits
 *     for the fence).
 * Then the fence is signalled: the callbacks run, the threads wake, both buffers poll ready.
 *
 * Usage: vgem_pending SOURCE ROUNDS   (SOURCE: vgem, udmabuf, heap or a card's driver name;
 * exit 2 when that source or its import into vgem is not there) */
#define _GNU_SOURCE
#include "common.h"

#include <linux/dma-buf.h>
#include <poll.h>
#include <pthread.h>

#define SIZE (64 * 64 * 4)

static pthread_barrier_t ready;
static int dmabuf;

static int vgem_dumb_dmabuf(int vgem, uint32_t *handle)
{
	struct drm_mode_create_dumb bo = { .height = 64, .width = 64, .bpp = 32 };
	struct drm_prime_handle p = { .flags = O_RDWR | O_CLOEXEC };

	if (ioctl(vgem, DRM_IOCTL_MODE_CREATE_DUMB, &bo))
		die("DRM_IOCTL_MODE_CREATE_DUMB on vgem");
	p.handle = bo.handle;
	if (ioctl(vgem, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p))
		die("DRM_IOCTL_PRIME_HANDLE_TO_FD (vgem)");
	*handle = bo.handle;
	return p.fd;
}

/* The buffer under test as a dma-buf fd, and its handle in vgem. */
static int source_dmabuf(const char *source, int vgem, uint32_t *handle)
{
	int fd;

	if (strcmp(source, "vgem") == 0)
		return vgem_dumb_dmabuf(vgem, handle);
	if (strcmp(source, "udmabuf") == 0)
		fd = new_udmabuf(SIZE);
	else if (strcmp(source, "heap") == 0)
		fd = new_heap_dmabuf(SIZE);
	else {
		int card = open_card(source);
		struct drm_mode_create_dumb bo = { .height = 64, .width = 64, .bpp = 32 };
		struct drm_prime_handle p = { .flags = O_RDWR | O_CLOEXEC };

		fd = -1;
		if (card >= 0 && ioctl(card, DRM_IOCTL_MODE_CREATE_DUMB, &bo) == 0) {
			p.handle = bo.handle;
			if (ioctl(card, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p) == 0)
				fd = p.fd;
		}
	}
	if (fd < 0) {
		printf("vgem_pending: no %s dma-buf: %s\n", source, strerror(errno));
		exit(2);
	}
	struct drm_prime_handle p = { .fd = fd };
	if (ioctl(vgem, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p)) {
		printf("vgem_pending: vgem does not import %s buffers: %s\n", source, strerror(errno));
		exit(2);
	}
	*handle = p.handle;
	return fd;
}

static void *poller(void *arg)
{
	struct pollfd pf = { .fd = dmabuf, .events = POLLIN };

	(void)arg;
	pthread_barrier_wait(&ready);
	return (void *)(intptr_t)(poll(&pf, 1, 20000) == 1);
}

static void *cpu_access(void *arg)
{
	struct dma_buf_sync s = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ };
	int ok;

	(void)arg;
	pthread_barrier_wait(&ready);
	ok = ioctl(dmabuf, DMA_BUF_IOCTL_SYNC, &s) == 0;
	s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
	ioctl(dmabuf, DMA_BUF_IOCTL_SYNC, &s);
	return (void *)(intptr_t)ok;
}

static int poll_now(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	return poll(&pf, 1, 0);
}

int main(int argc, char **argv)
{
	if (argc < 3 || atoi(argv[2]) <= 0) {
		errno = 0;
		die("usage: %s SOURCE ROUNDS", argv[0]);
	}
	const char *source = argv[1];
	int rounds = atoi(argv[2]), pending_seen = 0, propagated = 0, woken = 0;
	int vgem = open_vgem();

	for (int r = 0; r < rounds; r++) {
		uint32_t handle, other_handle;
		int other = vgem_dumb_dmabuf(vgem, &other_handle);
		struct drm_vgem_fence_attach fa = { .flags = VGEM_FENCE_WRITE };
		pthread_t threads[2];
		void *ok;

		dmabuf = source_dmabuf(source, vgem, &handle);
		fa.handle = handle;
		if (ioctl(vgem, DRM_IOCTL_VGEM_FENCE_ATTACH, &fa))
			die("DRM_IOCTL_VGEM_FENCE_ATTACH");
		pending_seen += poll_now(dmabuf) == 0;

		struct dma_buf_export_sync_file e = { .flags = DMA_BUF_SYNC_READ };
		if (ioctl(dmabuf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e))
			die("DMA_BUF_IOCTL_EXPORT_SYNC_FILE");
		struct dma_buf_import_sync_file im = { .flags = DMA_BUF_SYNC_WRITE, .fd = e.fd };
		if (ioctl(other, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &im))
			die("DMA_BUF_IOCTL_IMPORT_SYNC_FILE");
		propagated += poll_now(other) == 0 && poll_now(e.fd) == 0;

		pthread_barrier_init(&ready, NULL, 3);
		pthread_create(&threads[0], NULL, poller, NULL);
		pthread_create(&threads[1], NULL, cpu_access, NULL);
		pthread_barrier_wait(&ready);
		struct drm_vgem_fence_signal s = { .fence = fa.out_fence };
		if (ioctl(vgem, DRM_IOCTL_VGEM_FENCE_SIGNAL, &s))
			die("DRM_IOCTL_VGEM_FENCE_SIGNAL");
		for (int t = 0; t < 2; t++) {
			pthread_join(threads[t], &ok);
			woken += ok != NULL;
		}
		pthread_barrier_destroy(&ready);
		if (poll_now(dmabuf) != 1 || poll_now(other) != 1) {
			errno = 0;
			die("a buffer still polls busy after its fence was signalled");
		}
		struct drm_gem_close c = { .handle = handle };
		ioctl(vgem, DRM_IOCTL_GEM_CLOSE, &c);
		c.handle = other_handle;
		ioctl(vgem, DRM_IOCTL_GEM_CLOSE, &c);
		close(e.fd);
		close(other);
		close(dmabuf);
	}
	printf("vgem_pending: %s, %d round(s): pending at poll %d, propagated to a second buffer "
	       "%d, waiters woken by the signal %d of %d\n", source, rounds, pending_seen,
	       propagated, woken, 2 * rounds);
	if (pending_seen != rounds || propagated != rounds || woken != 2 * rounds) {
		errno = 0;
		die("a fence was not pending where it must be, or a waiter did not wake");
	}
	return 0;
}
