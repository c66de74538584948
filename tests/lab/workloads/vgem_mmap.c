/* mmap of vgem buffers: create a dumb buffer, map it through its fake offset and write to it.
 * vgem's objects are write-combined (shmem helpers, map_wc): their pages are set WC under the
 * object's reservation lock, which on 7.x takes init_mm's mmap_lock in the page-attribute code.
 * Usage: vgem_mmap [iterations] */
#define _GNU_SOURCE
#include "common.h"

#include <sys/mman.h>

struct drm_mode_map_dumb {
	uint32_t handle;
	uint32_t pad;
	uint64_t offset;
};

#define DRM_IOCTL_MODE_MAP_DUMB _IOWR(DRM_IOCTL_BASE, 0xB3, struct drm_mode_map_dumb)

int main(int argc, char **argv)
{
	int n = iterations(argc, argv);
	int vgem = open_vgem();

	for (int i = 0; i < n; i++) {
		struct drm_mode_create_dumb bo = { .height = 64, .width = 64, .bpp = 32 };
		struct drm_mode_map_dumb m = { 0 };
		struct drm_gem_close c = { 0 };

		if (ioctl(vgem, DRM_IOCTL_MODE_CREATE_DUMB, &bo))
			die("DRM_IOCTL_MODE_CREATE_DUMB on vgem");
		m.handle = bo.handle;
		if (ioctl(vgem, DRM_IOCTL_MODE_MAP_DUMB, &m))
			die("DRM_IOCTL_MODE_MAP_DUMB");
		uint8_t *p = mmap(NULL, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, vgem, (off_t)m.offset);
		if (p == MAP_FAILED)
			die("mmap of a vgem buffer");
		memset(p, 0x5a, bo.size);
		munmap(p, bo.size);
		c.handle = bo.handle;
		if (ioctl(vgem, DRM_IOCTL_GEM_CLOSE, &c))
			die("DRM_IOCTL_GEM_CLOSE");
	}
	printf("vgem_mmap: %d vgem buffers mapped, written and closed\n", n);
	return 0;
}
