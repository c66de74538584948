/* Scanout on a real KMS driver: a modeset onto a framebuffer, page flips between two
 * framebuffers (with completion events) and dirty-rectangle updates, then the framebuffers are
 * removed while on screen (which disables the CRTC). The driver's atomic commit runs under
 * the modeset ww context and pins, maps or fences the framebuffers' objects under their
 * reservation locks (qxl and bochs' TTM pins, the shadow-plane vmaps, prepare_fb's implicit
 * fences).
 *
 * The framebuffers come from SOURCE:
 *   dumb            the card's own dumb buffers, written through DRM_IOCTL_MODE_MAP_DUMB + mmap
 *                   of the card (the driver's fault handler, under mmap_lock)
 *   vgem, qxl, virtio_gpu, bochs-drm
 *                   another card's dumb buffers, exported and imported into this card by PRIME
 *                   (the exporter's attach/map under the resv), written through the dma-buf fd
 *   udmabuf, heap   a udmabuf or a system dma-heap buffer, imported by PRIME
 * With `fence` (source vgem), a vgem write fence is attached to the buffer before each flip and
 * signalled only after the flip was queued: the commit must wait for it (implicit sync).
 *
 * Exit status 2 when the card does not take the buffer (no import, no framebuffer from it):
 * scenarios mark those kernels unavailable.
 *
 * Usage: kms_scanout DRIVER SOURCE FLIPS [fence] */
#define _GNU_SOURCE
#include "kms.h"

#include <linux/dma-buf.h>

struct buffer {
	uint32_t handle;     /* in the scanout card */
	uint32_t pitch;
	uint32_t src_handle; /* in the exporting card (vgem: where fences are attached) */
	int src_card;        /* -1 for dumb, udmabuf and heap */
	uint32_t fb;
};

static int card;
static const char *source;
static uint32_t width, height;

static void unavailable(const char *what)
{
	printf("kms_scanout: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void fill(uint8_t *p, size_t len, int round)
{
	memset(p, 0x20 + 0x10 * (round & 7), len);
}

/* Write the buffer through its dma-buf fd, as user space does: mmap under
 * DMA_BUF_IOCTL_SYNC. */
static void write_dmabuf(int fd, size_t len, int round)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	struct dma_buf_sync s = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE };

	if (p == MAP_FAILED)
		return; /* some exporters do not mmap (qxl on 6.1): the scanout still runs */
	ioctl(fd, DMA_BUF_IOCTL_SYNC, &s);
	fill(p, len, round);
	s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE;
	ioctl(fd, DMA_BUF_IOCTL_SYNC, &s);
	munmap(p, len);
}

static int foreign_dmabuf(struct buffer *b, size_t *len)
{
	*len = (size_t)width * 4 * height;
	*len = (*len + 4095) & ~(size_t)4095;
	b->pitch = width * 4;
	if (strcmp(source, "heap") == 0 || strcmp(source, "udmabuf") == 0) {
		int fd = source[0] == 'h' ? new_heap_dmabuf(*len) : new_udmabuf(*len);

		if (fd < 0)
			unavailable(source);
		return fd;
	}
	/* Another card's dumb buffer. */
	struct drm_mode_create_dumb bo = { .height = height, .width = width, .bpp = 32 };
	struct drm_prime_handle p = { .flags = O_RDWR | O_CLOEXEC };

	b->src_card = open_card(source);
	if (b->src_card < 0)
		unavailable(source);
	if (ioctl(b->src_card, DRM_IOCTL_MODE_CREATE_DUMB, &bo))
		unavailable("dumb buffer of the exporting card");
	b->src_handle = bo.handle;
	b->pitch = bo.pitch;
	*len = bo.size;
	p.handle = bo.handle;
	if (ioctl(b->src_card, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p))
		unavailable("PRIME export from the exporting card");
	return p.fd;
}

static void make_buffer(struct buffer *b, int round)
{
	b->src_card = -1;
	if (strcmp(source, "dumb") == 0) {
		struct drm_mode_create_dumb bo = { .height = height, .width = width, .bpp = 32 };
		struct drm_mode_map_dumb m = { 0 };

		if (ioctl(card, DRM_IOCTL_MODE_CREATE_DUMB, &bo))
			die("DRM_IOCTL_MODE_CREATE_DUMB");
		b->handle = bo.handle;
		b->pitch = bo.pitch;
		m.handle = bo.handle;
		if (ioctl(card, DRM_IOCTL_MODE_MAP_DUMB, &m))
			die("DRM_IOCTL_MODE_MAP_DUMB");
		uint8_t *p = mmap(NULL, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, card,
				  (off_t)m.offset);
		if (p == MAP_FAILED)
			die("mmap of a dumb buffer");
		fill(p, bo.size, round); /* faults every page in through the driver */
		munmap(p, bo.size);
	} else {
		size_t len;
		int fd = foreign_dmabuf(b, &len);
		struct drm_prime_handle p = { .fd = fd };

		write_dmabuf(fd, len, round);
		if (ioctl(card, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p))
			unavailable("PRIME import into the scanout card");
		b->handle = p.handle;
		close(fd);
	}
	struct drm_mode_fb_cmd2 f = {
		.width = width,
		.height = height,
		.pixel_format = DRM_FORMAT_XRGB8888,
		.handles = { b->handle },
		.pitches = { b->pitch },
	};
	if (ioctl(card, DRM_IOCTL_MODE_ADDFB2, &f))
		unavailable("DRM_IOCTL_MODE_ADDFB2 on the buffer");
	b->fb = f.fb_id;
}

/* Wait (at most 10 s) for the flip's completion event; returns 1 if it came. */
static int wait_flip(void)
{
	struct pollfd pf = { .fd = card, .events = POLLIN };
	char ev[256];

	if (poll(&pf, 1, 10000) != 1)
		return 0;
	return read(card, ev, sizeof(ev)) >= (ssize_t)sizeof(struct drm_event);
}

int main(int argc, char **argv)
{
	if (argc < 4 || atoi(argv[3]) <= 0) {
		errno = 0;
		die("usage: %s DRIVER SOURCE FLIPS [fence]", argv[0]);
	}
	const char *driver = argv[1];
	int flips = atoi(argv[3]);
	int fenced = argc > 4 && strcmp(argv[4], "fence") == 0;
	struct kms_output out;
	struct buffer bufs[2];
	int done = 0, events = 0, dirty = 0, waited = 0, setcrtc = 0;

	source = argv[2];
	if (fenced && strcmp(source, "vgem") != 0) {
		errno = 0;
		die("fence needs source vgem");
	}
	card = open_card(driver);
	if (card < 0)
		unavailable(driver);
	ioctl(card, DRM_IOCTL_SET_MASTER, 0); /* the first opener is master already */
	if (find_output(card, &out)) {
		errno = ENODEV;
		unavailable("no connected output");
	}
	width = out.mode.hdisplay;
	height = out.mode.vdisplay;
	for (int i = 0; i < 2; i++)
		make_buffer(&bufs[i], i);

	struct drm_mode_crtc set = {
		.set_connectors_ptr = (uintptr_t)&out.connector,
		.count_connectors = 1,
		.crtc_id = out.crtc,
		.fb_id = bufs[0].fb,
		.mode_valid = 1,
		.mode = out.mode,
	};
	if (ioctl(card, DRM_IOCTL_MODE_SETCRTC, &set))
		die("DRM_IOCTL_MODE_SETCRTC %ux%u", width, height);
	for (int i = 1; i <= flips; i++) {
		struct buffer *b = &bufs[i & 1];
		struct drm_vgem_fence_attach fa = { .handle = b->src_handle, .flags = VGEM_FENCE_WRITE };
		struct drm_mode_crtc_page_flip pf = {
			.crtc_id = out.crtc,
			.fb_id = b->fb,
			.flags = DRM_MODE_PAGE_FLIP_EVENT,
		};

		if (fenced && ioctl(b->src_card, DRM_IOCTL_VGEM_FENCE_ATTACH, &fa))
			die("DRM_IOCTL_VGEM_FENCE_ATTACH");
		if (ioctl(card, DRM_IOCTL_MODE_PAGE_FLIP, &pf)) {
			/* No page flip on this driver or kernel: a full set_config instead. */
			if (fenced) {
				struct drm_vgem_fence_signal s = { .fence = fa.out_fence };
				ioctl(b->src_card, DRM_IOCTL_VGEM_FENCE_SIGNAL, &s);
			}
			set.fb_id = b->fb;
			if (ioctl(card, DRM_IOCTL_MODE_SETCRTC, &set))
				die("DRM_IOCTL_MODE_SETCRTC (flip %d)", i);
			setcrtc++;
		} else {
			if (fenced) {
				struct pollfd p = { .fd = card, .events = POLLIN };
				struct drm_vgem_fence_signal s = { .fence = fa.out_fence };

				/* The commit waits for the fence: no completion before the signal. */
				waited += poll(&p, 1, 50) == 0;
				if (ioctl(b->src_card, DRM_IOCTL_VGEM_FENCE_SIGNAL, &s))
					die("DRM_IOCTL_VGEM_FENCE_SIGNAL");
			}
			events += wait_flip();
			done++;
		}
		struct drm_clip_rect clip = { 0, 0, (uint16_t)(width / 2), (uint16_t)(height / 2) };
		struct drm_mode_fb_dirty_cmd d = { .fb_id = b->fb, .num_clips = 1,
						   .clips_ptr = (uintptr_t)&clip };
		dirty += ioctl(card, DRM_IOCTL_MODE_DIRTYFB, &d) == 0;
	}
	/* Removing a framebuffer that is on screen disables the CRTC (another commit). */
	for (int i = 0; i < 2; i++) {
		struct drm_gem_close c = { .handle = bufs[i].handle };

		if (ioctl(card, DRM_IOCTL_MODE_RMFB, &bufs[i].fb))
			die("DRM_IOCTL_MODE_RMFB");
		ioctl(card, DRM_IOCTL_GEM_CLOSE, &c);
		if (bufs[i].src_card >= 0) {
			c.handle = bufs[i].src_handle;
			ioctl(bufs[i].src_card, DRM_IOCTL_GEM_CLOSE, &c);
		}
	}
	printf("kms_scanout: %s from %s, %ux%u: 1 modeset, %d page flip(s) (%d completion "
	       "event(s)%s), %d set_config flip(s), %d dirty update(s)\n",
	       driver, source, width, height, done, events, fenced ? ", fenced" : "", setcrtc,
	       dirty);
	if (fenced)
		printf("kms_scanout: %d of %d flip(s) had not completed before their fence was "
		       "signalled\n", waited, done);
	if (done + setcrtc != flips || events != done) {
		errno = 0;
		die("flips lost: %d queued, %d completed", done, events);
	}
	return 0;
}
