/* Shared helpers for the lab workloads: the few DRM uapi definitions they need (the host's
 * linux-libc-dev ships no drm/ headers), finding the vgem card, and PRIME import. */
#ifndef LAB_COMMON_H
#define LAB_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <sys/mman.h>

struct drm_version {
	int version_major;
	int version_minor;
	int version_patchlevel;
	size_t name_len;
	char *name;
	size_t date_len;
	char *date;
	size_t desc_len;
	char *desc;
};

struct drm_gem_close {
	uint32_t handle;
	uint32_t pad;
};

struct drm_prime_handle {
	uint32_t handle;
	uint32_t flags;
	int32_t fd;
};

struct drm_mode_create_dumb {
	uint32_t height;
	uint32_t width;
	uint32_t bpp;
	uint32_t flags;
	uint32_t handle;
	uint32_t pitch;
	uint64_t size;
};

#define DRM_IOCTL_BASE 'd'
#define DRM_IOCTL_VERSION _IOWR(DRM_IOCTL_BASE, 0x00, struct drm_version)
#define DRM_IOCTL_GEM_CLOSE _IOW(DRM_IOCTL_BASE, 0x09, struct drm_gem_close)
#define DRM_IOCTL_PRIME_HANDLE_TO_FD _IOWR(DRM_IOCTL_BASE, 0x2d, struct drm_prime_handle)
#define DRM_IOCTL_PRIME_FD_TO_HANDLE _IOWR(DRM_IOCTL_BASE, 0x2e, struct drm_prime_handle)
#define DRM_IOCTL_MODE_CREATE_DUMB _IOWR(DRM_IOCTL_BASE, 0xB2, struct drm_mode_create_dumb)
#define DRM_COMMAND_BASE 0x40

/* vgem's fences (include/uapi/drm/vgem_drm.h). */
struct drm_vgem_fence_attach {
	uint32_t handle;
	uint32_t flags;
	uint32_t out_fence;
	uint32_t pad;
};

struct drm_vgem_fence_signal {
	uint32_t fence;
	uint32_t flags;
};

#define VGEM_FENCE_WRITE 0x1
#define DRM_IOCTL_VGEM_FENCE_ATTACH \
	_IOWR(DRM_IOCTL_BASE, DRM_COMMAND_BASE + 0x1, struct drm_vgem_fence_attach)
#define DRM_IOCTL_VGEM_FENCE_SIGNAL \
	_IOW(DRM_IOCTL_BASE, DRM_COMMAND_BASE + 0x2, struct drm_vgem_fence_signal)

static inline void die(const char *fmt, ...)
{
	va_list ap;
	int err = errno;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(1);
}

/* Whether /dev/dri/card<i>, opened, is a card of `driver` (as DRM_IOCTL_VERSION names it);
 * returns its fd if so, else -1. */
static inline int open_card_if(int i, const char *driver)
{
	char path[32], name[64] = { 0 };
	struct drm_version v = { .name = name, .name_len = sizeof(name) - 1 };
	int fd;

	snprintf(path, sizeof(path), "/dev/dri/card%d", i);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ioctl(fd, DRM_IOCTL_VERSION, &v) == 0 && strcmp(name, driver) == 0)
		return fd;
	close(fd);
	return -1;
}

/* The DRM driver of /dev/dri/card<i> as its device's driver in sysfs says, without opening
 * the card: bochs-drm and qxl bind their PCI devices under their own names, the virtio GPU's
 * PCI device is bound to virtio-pci, and vgem's device has no driver (6.1, 6.12) or the faux
 * bus driver (7.x). */
static inline const char *sysfs_card_driver(int i, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/sys/class/drm/card%d/device", i);
	if (access(link, F_OK))
		return NULL; /* no such card */
	snprintf(link, sizeof(link), "/sys/class/drm/card%d/device/driver", i);
	n = readlink(link, buf, len - 1);
	if (n <= 0)
		return "vgem";
	buf[n] = 0;
	const char *base = strrchr(buf, '/');
	base = base ? base + 1 : buf;
	if (strcmp(base, "virtio-pci") == 0)
		return "virtio_gpu";
	if (strcmp(base, "faux_driver") == 0)
		return "vgem";
	return base;
}

/* The card whose driver DRM_IOCTL_VERSION names `driver` (vgem, bochs-drm, qxl, virtio_gpu);
 * -1 (errno ENODEV) if none. The card is picked by sysfs first, so that other cards are not
 * opened: the first opener of a card becomes its DRM master, and a passing open would take
 * that from a program about to set a mode. Every card is tried only when sysfs names none. */
static inline int open_card(const char *driver)
{
	for (int i = 0; i < 16; i++) {
		char target[256];
		const char *name = sysfs_card_driver(i, target, sizeof(target));

		if (name && strcmp(name, driver) == 0) {
			int fd = open_card_if(i, driver);

			if (fd >= 0)
				return fd;
		}
	}
	for (int i = 0; i < 16; i++) {
		int fd = open_card_if(i, driver);

		if (fd >= 0)
			return fd;
	}
	errno = ENODEV;
	return -1;
}

/* vgem is not necessarily card0 (bochs registers a card too). */
static inline int open_vgem(void)
{
	int fd = open_card("vgem");

	if (fd < 0)
		die("no vgem card under /dev/dri (is the vgem module loaded?)");
	return fd;
}

static inline int iterations(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5;

	if (n <= 0) {
		errno = 0;
		die("usage: %s [iterations > 0]", argv[0]);
	}
	return n;
}

/* Import a dma-buf into vgem (attach + map on the exporter, under its resv lock) and drop
 * the GEM handle again (unmap + detach). */
static inline void import_and_close(int vgem, int dmabuf)
{
	struct drm_prime_handle p = { .fd = dmabuf };
	struct drm_gem_close c = { 0 };

	if (ioctl(vgem, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p))
		die("DRM_IOCTL_PRIME_FD_TO_HANDLE into vgem");
	c.handle = p.handle;
	if (ioctl(vgem, DRM_IOCTL_GEM_CLOSE, &c))
		die("DRM_IOCTL_GEM_CLOSE");
}

/* A dma-buf of `len` bytes from the system dma-heap; -1 (errno set) where there is none. */
static inline int new_heap_dmabuf(size_t len)
{
	int heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);
	struct dma_heap_allocation_data a = { .len = len, .fd_flags = O_RDWR | O_CLOEXEC };
	int err;

	if (heap < 0)
		return -1;
	err = ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &a);
	close(heap);
	return err ? -1 : (int)a.fd;
}

/* A udmabuf of `len` bytes (a multiple of the page size) over a sealed memfd; -1 (errno set)
 * where the kernel has no udmabuf. */
static inline int new_udmabuf(size_t len)
{
	int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	int memfd = memfd_create("lab-udmabuf", MFD_ALLOW_SEALING);
	struct udmabuf_create c = { .size = len, .flags = UDMABUF_FLAGS_CLOEXEC };
	int fd = -1;

	if (dev < 0 || memfd < 0)
		goto out;
	/* udmabuf refuses memfds that could shrink under it. */
	if (ftruncate(memfd, (off_t)len) || fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK))
		die("sizing and sealing a memfd");
	c.memfd = (uint32_t)memfd;
	fd = ioctl(dev, UDMABUF_CREATE, &c);
out:
	if (memfd >= 0)
		close(memfd);
	if (dev >= 0)
		close(dev);
	return fd;
}

#endif
