/* What user space does with a dma-buf fd, on a real exporter's buffer: mmap and write it,
 * DMA_BUF_IOCTL_SYNC around CPU access (begin/end_cpu_access), DMA_BUF_SET_NAME,
 * DMA_BUF_IOCTL_EXPORT_SYNC_FILE and IMPORT_SYNC_FILE (the core locks the resv to read or add
 * fences), poll() (the core locks the resv to install fence callbacks), and a PRIME import
 * into vgem. With THREADS > 1 the threads share each buffer, and one of them closes its fd and
 * the vgem handle while the others still map and sync it.
 * Usage: dmabuf_fdops udmabuf|heap|vgem|CARD-DRIVER ITERATIONS [THREADS]   (CARD-DRIVER: a
 * card's DRM driver name, e.g. virtio_gpu: its dumb buffers, exported) */
#define _GNU_SOURCE
#include "common.h"

#include <linux/dma-buf.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>

#define PAGES 4

static const char *source;
static int vgem;
static size_t size;

/* A new dma-buf of the chosen exporter. */
static int new_dmabuf(void)
{
	if (strcmp(source, "heap") == 0 || strcmp(source, "udmabuf") == 0) {
		int fd = source[0] == 'h' ? new_heap_dmabuf(size) : new_udmabuf(size);

		if (fd < 0)
			die("a new %s dma-buf", source);
		return fd;
	}
	/* A dumb buffer of a card (vgem or a KMS driver by its DRM driver name), exported. */
	int card = strcmp(source, "vgem") == 0 ? vgem : open_card(source);
	/* 64 pixels of 4 bytes a row: as many rows as the buffer has bytes / 256. */
	struct drm_mode_create_dumb bo = { .height = (uint32_t)(size / 256), .width = 64, .bpp = 32 };
	struct drm_prime_handle p = { .flags = O_RDWR | O_CLOEXEC };
	struct drm_gem_close c = { 0 };

	if (card < 0)
		die("no %s card (a source is udmabuf, heap or a card's driver name)", source);
	if (ioctl(card, DRM_IOCTL_MODE_CREATE_DUMB, &bo))
		die("DRM_IOCTL_MODE_CREATE_DUMB on %s", source);
	p.handle = bo.handle;
	if (ioctl(card, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p))
		die("DRM_IOCTL_PRIME_HANDLE_TO_FD (%s export)", source);
	c.handle = bo.handle;
	ioctl(card, DRM_IOCTL_GEM_CLOSE, &c);
	if (card != vgem)
		close(card);
	return p.fd;
}

static void sync_ioctl(int fd, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	if (ioctl(fd, DMA_BUF_IOCTL_SYNC, &s))
		die("DMA_BUF_IOCTL_SYNC");
}

/* Everything an fd user does, once. */
static void use(int fd)
{
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		die("mmap of the dma-buf");
	sync_ioctl(fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW);
	memset(p, 0xa5, size);
	sync_ioctl(fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW);
	munmap(p, size);

	if (ioctl(fd, DMA_BUF_SET_NAME_B, "lab-fdops"))
		die("DMA_BUF_SET_NAME");

	struct dma_buf_export_sync_file e = { .flags = DMA_BUF_SYNC_RW };
	if (ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e))
		die("DMA_BUF_IOCTL_EXPORT_SYNC_FILE");
	struct dma_buf_import_sync_file im = { .flags = DMA_BUF_SYNC_WRITE, .fd = e.fd };
	if (ioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &im))
		die("DMA_BUF_IOCTL_IMPORT_SYNC_FILE");
	close(e.fd);

	struct pollfd pf = { .fd = fd, .events = POLLIN | POLLOUT };
	if (poll(&pf, 1, 0) < 0)
		die("poll on the dma-buf");
}

struct shared {
	int fd;
	pthread_barrier_t start;
};

static void *worker(void *arg)
{
	struct shared *s = arg;
	int fd = dup(s->fd);

	if (fd < 0)
		die("dup");
	pthread_barrier_wait(&s->start);
	use(fd);
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		errno = 0;
		die("usage: dmabuf_fdops udmabuf|heap|vgem|CARD-DRIVER ITERATIONS [THREADS]");
	}
	source = argv[1];
	int n = iterations(argc - 1, argv + 1);
	int threads = argc > 3 ? atoi(argv[3]) : 1;
	if (threads < 1 || threads > 16) {
		errno = 0;
		die("THREADS must be 1-16");
	}
	size = PAGES * (size_t)sysconf(_SC_PAGESIZE);
	vgem = open_vgem();

	for (int i = 0; i < n; i++) {
		struct shared s = { .fd = new_dmabuf() };
		pthread_t t[16];

		/* The importer side: vgem maps it (attach + map under the resv). */
		struct drm_prime_handle p = { .fd = s.fd };
		if (ioctl(vgem, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p))
			die("DRM_IOCTL_PRIME_FD_TO_HANDLE into vgem");
		if (threads == 1) {
			use(s.fd);
		} else {
			pthread_barrier_init(&s.start, NULL, (unsigned)threads);
			for (int k = 0; k < threads - 1; k++)
				if (pthread_create(&t[k], NULL, worker, &s))
					die("pthread_create");
			pthread_barrier_wait(&s.start);
			/* Release the importer's handle and our fd while the others map. */
			struct drm_gem_close c = { .handle = p.handle };
			ioctl(vgem, DRM_IOCTL_GEM_CLOSE, &c);
			p.handle = 0;
			close(s.fd);
			for (int k = 0; k < threads - 1; k++)
				pthread_join(t[k], NULL);
			pthread_barrier_destroy(&s.start);
			continue;
		}
		struct drm_gem_close c = { .handle = p.handle };
		if (ioctl(vgem, DRM_IOCTL_GEM_CLOSE, &c))
			die("DRM_IOCTL_GEM_CLOSE");
		close(s.fd);
	}
	printf("dmabuf_fdops: %d %s buffer(s) mapped, synced, named, fenced and polled by %d thread(s)\n",
	       n, source, threads);
	return 0;
}
