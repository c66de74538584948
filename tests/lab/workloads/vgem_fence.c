/* vgem's fence ioctls on a vgem buffer: attach a (write) fence, which takes the buffer's
 * resv lock to add it, then signal it. Usage: vgem_fence [iterations] */
#define _GNU_SOURCE
#include "common.h"

int main(int argc, char **argv)
{
	int n = iterations(argc, argv);
	int vgem = open_vgem();
	struct drm_mode_create_dumb bo = { .height = 16, .width = 16, .bpp = 32 };
	struct drm_gem_close c = { 0 };

	if (ioctl(vgem, DRM_IOCTL_MODE_CREATE_DUMB, &bo))
		die("DRM_IOCTL_MODE_CREATE_DUMB on vgem");
	for (int i = 0; i < n; i++) {
		struct drm_vgem_fence_attach a = { .handle = bo.handle, .flags = VGEM_FENCE_WRITE };
		struct drm_vgem_fence_signal s = { 0 };

		if (ioctl(vgem, DRM_IOCTL_VGEM_FENCE_ATTACH, &a))
			die("DRM_IOCTL_VGEM_FENCE_ATTACH");
		s.fence = a.out_fence;
		if (ioctl(vgem, DRM_IOCTL_VGEM_FENCE_SIGNAL, &s))
			die("DRM_IOCTL_VGEM_FENCE_SIGNAL");
	}
	c.handle = bo.handle;
	if (ioctl(vgem, DRM_IOCTL_GEM_CLOSE, &c))
		die("DRM_IOCTL_GEM_CLOSE");
	printf("vgem_fence: %d write fences attached to a vgem buffer and signalled\n", n);
	return 0;
}
