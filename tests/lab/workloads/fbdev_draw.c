/* A KMS driver's fbdev emulation driven from user space: write() and mmap writes to its
 * /dev/fbN (deferred I/O: the damage worker blits the shadow buffer into the driver's GEM
 * object, mapped under its reservation lock, and commits a dirty update), fsync (flushes
 * the damage now), FBIOPAN_DISPLAY and blank/unblank (modesets through the fb helper's
 * modeset ww context).
 *
 * Usage: fbdev_draw DRIVER ROUNDS   (DRIVER: part of /sys/class/graphics/fbN/name, e.g. qxl,
 * virtio_gpu, bochs; exit 2 when no framebuffer device of that driver exists) */
#define _GNU_SOURCE
#include "common.h"

#include <linux/fb.h>
#include <sys/mman.h>

static int open_fb(const char *driver, char *path, size_t len)
{
	for (int i = 0; i < 8; i++) {
		char name[64] = { 0 }, sys[64];
		int fd;

		snprintf(sys, sizeof(sys), "/sys/class/graphics/fb%d/name", i);
		fd = open(sys, O_RDONLY);
		if (fd < 0)
			continue;
		if (read(fd, name, sizeof(name) - 1) < 0)
			name[0] = 0;
		close(fd);
		if (!strstr(name, driver))
			continue;
		snprintf(path, len, "/dev/fb%d", i);
		name[strcspn(name, "\n")] = 0;
		printf("fbdev_draw: %s is %s\n", path, name);
		return open(path, O_RDWR | O_CLOEXEC);
	}
	errno = ENODEV;
	return -1;
}

int main(int argc, char **argv)
{
	if (argc < 3 || atoi(argv[2]) <= 0) {
		errno = 0;
		die("usage: %s DRIVER ROUNDS", argv[0]);
	}
	int rounds = atoi(argv[2]), writes = 0, maps = 0, syncs = 0, pans = 0, blanks = 0;
	char path[32];
	int fd = open_fb(argv[1], path, sizeof(path));
	struct fb_var_screeninfo var;
	struct fb_fix_screeninfo fix;

	if (fd < 0) {
		printf("fbdev_draw: no framebuffer device of %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (ioctl(fd, FBIOGET_VSCREENINFO, &var) || ioctl(fd, FBIOGET_FSCREENINFO, &fix))
		die("FBIOGET_VSCREENINFO/FSCREENINFO on %s", path);
	size_t size = (size_t)fix.line_length * var.yres;
	char *row = malloc(fix.line_length);

	if (!row)
		die("malloc");
	for (int r = 0; r < rounds; r++) {
		memset(row, 0x40 + r, fix.line_length);
		/* A band of rows through write(): the fb core copies into the shadow buffer. */
		for (uint32_t y = 0; y < var.yres && y < 64; y++)
			writes += pwrite(fd, row, fix.line_length,
					 (off_t)(((r * 64 + y) % var.yres) * fix.line_length)) > 0;
		/* And through a mapping: page faults mark the pages dirty (deferred I/O). */
		uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			memset(p + (size / 2), 0x80 + r, size / 4);
			munmap(p, size);
			maps++;
		}
		syncs += fsync(fd) == 0;
		var.yoffset = 0;
		pans += ioctl(fd, FBIOPAN_DISPLAY, &var) == 0;
		blanks += ioctl(fd, FBIOBLANK, FB_BLANK_POWERDOWN) == 0 &&
			  ioctl(fd, FBIOBLANK, FB_BLANK_UNBLANK) == 0;
	}
	printf("fbdev_draw: %s %ux%u: %d row write(s), %d mapped write(s), %d fsync(s), %d pan(s), "
	       "%d blank/unblank(s)\n", path, var.xres, var.yres, writes, maps, syncs, pans, blanks);
	if (writes == 0) {
		errno = 0;
		die("nothing was written to %s", path);
	}
	return 0;
}
