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

/* vgem is not necessarily card0 (bochs registers a card too): ask each card its driver. */
static inline int open_vgem(void)
{
	for (int i = 0; i < 16; i++) {
		char path[32], name[64] = { 0 };
		struct drm_version v = { .name = name, .name_len = sizeof(name) - 1 };
		int fd;

		snprintf(path, sizeof(path), "/dev/dri/card%d", i);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (ioctl(fd, DRM_IOCTL_VERSION, &v) == 0 && strcmp(name, "vgem") == 0)
			return fd;
		close(fd);
	}
	errno = ENODEV;
	die("no vgem card under /dev/dri (is the vgem module loaded?)");
	return -1;
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

#endif
