/* The DRM mode-setting uapi the KMS workloads use (the host's linux-libc-dev ships no drm/
 * headers): the layouts and ioctl numbers of include/uapi/drm/drm.h and drm_mode.h, which are
 * ABI and the same on every kernel the lab boots. */
#ifndef LAB_KMS_H
#define LAB_KMS_H

#include "common.h"

#include <poll.h>

struct drm_mode_modeinfo {
	uint32_t clock;
	uint16_t hdisplay, hsync_start, hsync_end, htotal, hskew;
	uint16_t vdisplay, vsync_start, vsync_end, vtotal, vscan;
	uint32_t vrefresh;
	uint32_t flags;
	uint32_t type;
	char name[32];
};

struct drm_mode_card_res {
	uint64_t fb_id_ptr, crtc_id_ptr, connector_id_ptr, encoder_id_ptr;
	uint32_t count_fbs, count_crtcs, count_connectors, count_encoders;
	uint32_t min_width, max_width, min_height, max_height;
};

struct drm_mode_crtc {
	uint64_t set_connectors_ptr;
	uint32_t count_connectors;
	uint32_t crtc_id;
	uint32_t fb_id;
	uint32_t x, y;
	uint32_t gamma_size;
	uint32_t mode_valid;
	struct drm_mode_modeinfo mode;
};

struct drm_mode_get_encoder {
	uint32_t encoder_id, encoder_type, crtc_id, possible_crtcs, possible_clones;
};

struct drm_mode_get_connector {
	uint64_t encoders_ptr, modes_ptr, props_ptr, prop_values_ptr;
	uint32_t count_modes, count_props, count_encoders;
	uint32_t encoder_id, connector_id, connector_type, connector_type_id;
	uint32_t connection;
	uint32_t mm_width, mm_height;
	uint32_t subpixel;
	uint32_t pad;
};

struct drm_mode_fb_cmd2 {
	uint32_t fb_id, width, height, pixel_format, flags;
	uint32_t handles[4], pitches[4], offsets[4];
	uint64_t modifier[4];
};

struct drm_mode_crtc_page_flip {
	uint32_t crtc_id, fb_id, flags, reserved;
	uint64_t user_data;
};

struct drm_clip_rect {
	uint16_t x1, y1, x2, y2;
};

struct drm_mode_fb_dirty_cmd {
	uint32_t fb_id, flags, color, num_clips;
	uint64_t clips_ptr;
};

struct drm_mode_map_dumb {
	uint32_t handle, pad;
	uint64_t offset;
};

struct drm_event {
	uint32_t type, length;
};

#define DRM_IOCTL_SET_MASTER _IO(DRM_IOCTL_BASE, 0x1e)
#define DRM_IOCTL_MODE_GETRESOURCES _IOWR(DRM_IOCTL_BASE, 0xA0, struct drm_mode_card_res)
#define DRM_IOCTL_MODE_SETCRTC _IOWR(DRM_IOCTL_BASE, 0xA2, struct drm_mode_crtc)
#define DRM_IOCTL_MODE_GETENCODER _IOWR(DRM_IOCTL_BASE, 0xA6, struct drm_mode_get_encoder)
#define DRM_IOCTL_MODE_GETCONNECTOR _IOWR(DRM_IOCTL_BASE, 0xA7, struct drm_mode_get_connector)
#define DRM_IOCTL_MODE_RMFB _IOWR(DRM_IOCTL_BASE, 0xAF, unsigned int)
#define DRM_IOCTL_MODE_PAGE_FLIP _IOWR(DRM_IOCTL_BASE, 0xB0, struct drm_mode_crtc_page_flip)
#define DRM_IOCTL_MODE_DIRTYFB _IOWR(DRM_IOCTL_BASE, 0xB1, struct drm_mode_fb_dirty_cmd)
#define DRM_IOCTL_MODE_MAP_DUMB _IOWR(DRM_IOCTL_BASE, 0xB3, struct drm_mode_map_dumb)
#define DRM_IOCTL_MODE_ADDFB2 _IOWR(DRM_IOCTL_BASE, 0xB8, struct drm_mode_fb_cmd2)

#define DRM_MODE_CONNECTED 1
#define DRM_MODE_PAGE_FLIP_EVENT 0x01
#define DRM_EVENT_FLIP_COMPLETE 0x02
#define DRM_FORMAT_XRGB8888 \
	((uint32_t)'X' | ((uint32_t)'R' << 8) | ((uint32_t)'2' << 16) | ((uint32_t)'4' << 24))

/* A connected connector of the card, the CRTC that can drive it and its preferred (first)
 * mode. Returns 0, or -1 when the card has none connected. */
struct kms_output {
	uint32_t connector, crtc;
	struct drm_mode_modeinfo mode;
};

static inline int find_output(int fd, struct kms_output *out)
{
	uint32_t crtcs[8], conns[8], encs[8];
	struct drm_mode_card_res res = { 0 };

	if (ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res))
		die("DRM_IOCTL_MODE_GETRESOURCES");
	if (res.count_crtcs > 8 || res.count_connectors > 8 || res.count_encoders > 8) {
		errno = 0;
		die("more than 8 CRTCs, connectors or encoders: not a qemu device");
	}
	res.count_fbs = 0;
	res.crtc_id_ptr = (uintptr_t)crtcs;
	res.connector_id_ptr = (uintptr_t)conns;
	res.encoder_id_ptr = (uintptr_t)encs;
	if (ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res))
		die("DRM_IOCTL_MODE_GETRESOURCES (ids)");
	for (uint32_t c = 0; c < res.count_connectors; c++) {
		struct drm_mode_modeinfo modes[64];
		uint32_t enc_ids[8];
		struct drm_mode_get_connector gc = { .connector_id = conns[c] };

		if (ioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &gc))
			die("DRM_IOCTL_MODE_GETCONNECTOR");
		if (gc.connection != DRM_MODE_CONNECTED || gc.count_modes == 0 ||
		    gc.count_encoders == 0)
			continue;
		if (gc.count_modes > 64)
			gc.count_modes = 64;
		if (gc.count_encoders > 8)
			gc.count_encoders = 8;
		gc.count_props = 0;
		gc.modes_ptr = (uintptr_t)modes;
		gc.encoders_ptr = (uintptr_t)enc_ids;
		if (ioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &gc))
			die("DRM_IOCTL_MODE_GETCONNECTOR (modes)");
		struct drm_mode_get_encoder ge = { .encoder_id = enc_ids[0] };
		if (ioctl(fd, DRM_IOCTL_MODE_GETENCODER, &ge))
			die("DRM_IOCTL_MODE_GETENCODER");
		for (uint32_t k = 0; k < res.count_crtcs; k++) {
			if (!(ge.possible_crtcs & (1u << k)))
				continue;
			out->connector = conns[c];
			out->crtc = crtcs[k];
			out->mode = modes[0];
			/* The smallest listed mode keeps the buffers (and TCG's copies) small. */
			for (uint32_t m = 1; m < gc.count_modes; m++)
				if ((uint32_t)modes[m].hdisplay * modes[m].vdisplay <
				    (uint32_t)out->mode.hdisplay * out->mode.vdisplay)
					out->mode = modes[m];
			return 0;
		}
	}
	return -1;
}

#endif
