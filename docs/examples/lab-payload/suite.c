/* A stand-in for a user's own test suite (TAP output), built as an ordinary dynamically linked
 * program on the host and run in the lab guest with `cargo xtask lab --payload DIR`: it
 * allocates a system-heap dma-buf, maps it and brackets CPU access with DMA_BUF_IOCTL_SYNC,
 * exports and re-imports its fences, and does the same with a udmabuf. docs/lab.md, "Bring your
 * own suite". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIZE (4 * 4096)

static int test_no;

static void report(int ok, const char *what)
{
	printf("%s %d - %s%s%s\n", ok ? "ok" : "not ok", ++test_no, what, ok ? "" : ": ",
	       ok ? "" : strerror(errno));
}

static int cpu_access(int fd)
{
	struct dma_buf_sync s = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };
	char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED || ioctl(fd, DMA_BUF_IOCTL_SYNC, &s))
		return 0;
	memset(p, 1, SIZE);
	s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
	if (ioctl(fd, DMA_BUF_IOCTL_SYNC, &s))
		return 0;
	return munmap(p, SIZE) == 0;
}

static int fences(int fd)
{
	struct dma_buf_export_sync_file e = { .flags = DMA_BUF_SYNC_RW };
	struct dma_buf_import_sync_file im = { .flags = DMA_BUF_SYNC_WRITE };

	if (ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e))
		return 0;
	im.fd = e.fd;
	int ok = ioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &im) == 0;
	close(e.fd);
	return ok;
}

static int heap_buffer(void)
{
	struct dma_heap_allocation_data a = { .len = SIZE, .fd_flags = O_RDWR | O_CLOEXEC };
	int heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);

	if (heap < 0 || ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &a))
		return -1;
	close(heap);
	return a.fd;
}

static int udmabuf_buffer(void)
{
	int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	int memfd = memfd_create("suite", MFD_ALLOW_SEALING);
	struct udmabuf_create c = { .size = SIZE };

	if (dev < 0 || memfd < 0 || ftruncate(memfd, SIZE) ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK))
		return -1;
	c.memfd = (unsigned int)memfd;
	int fd = ioctl(dev, UDMABUF_CREATE, &c);
	close(memfd);
	close(dev);
	return fd;
}

int main(void)
{
	struct {
		const char *name;
		int (*make)(void);
	} sources[] = { { "system heap", heap_buffer }, { "udmabuf", udmabuf_buffer } };

	printf("1..%zu\n", 3 * sizeof(sources) / sizeof(sources[0]));
	for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
		char what[64];
		int fd = sources[i].make();

		snprintf(what, sizeof(what), "%s: allocate", sources[i].name);
		report(fd >= 0, what);
		snprintf(what, sizeof(what), "%s: mmap + DMA_BUF_IOCTL_SYNC", sources[i].name);
		report(fd >= 0 && cpu_access(fd), what);
		snprintf(what, sizeof(what), "%s: export/import sync file", sources[i].name);
		report(fd >= 0 && fences(fd), what);
		if (fd >= 0)
			close(fd);
	}
	return 0;
}
