/* PRIME between real DRM drivers: every card under /dev/dri exports dumb buffers, every other
 * card imports them (attach and, where the importer maps at import, map: the exporter's
 * callbacks under its reservation lock), and each exported fd is used as user space uses
 * one (mmap + DMA_BUF_IOCTL_SYNC, DMA_BUF_SET_NAME, EXPORT/IMPORT_SYNC_FILE, poll). Nothing of
 * ours runs in the kernel: the drivers' own dma-buf code does.
 *
 * A driver may refuse a step (qxl and virtio-gpu import only what they can place, bochs has
 * no PRIME import): refusals are counted per pair and printed, not fatal; a workload that
 * exercised nothing fails, so a scenario cannot pass on an empty run.
 *
 * EXPORTER may also be udmabuf or heap (a system dma-heap buffer): buffers of no card, offered
 * to every card. With -t THREADS, that many threads run the whole matrix at once on the same
 * card fds (the same DRM files: concurrent exports, imports and handle lookups of one file).
 *
 * Usage: prime_matrix [-t THREADS] ITERATIONS [EXPORTER [IMPORTER]]   (driver names as
 * DRM_IOCTL_VERSION gives them: vgem, bochs-drm, qxl, virtio_gpu; "all" or nothing for every
 * card) */
#define _GNU_SOURCE
#include "common.h"

#include <linux/dma-buf.h>
#include <poll.h>
#include <pthread.h>

#define MAX_CARDS 8

struct card {
	int fd;
	char name[32];
};

static struct card cards[MAX_CARDS];
static int ncards;

static void find_cards(void)
{
	for (int i = 0; i < 16 && ncards < MAX_CARDS; i++) {
		char path[32];
		struct card *c = &cards[ncards];
		struct drm_version v = { .name = c->name, .name_len = sizeof(c->name) - 1 };

		snprintf(path, sizeof(path), "/dev/dri/card%d", i);
		c->fd = open(path, O_RDWR | O_CLOEXEC);
		if (c->fd < 0)
			continue;
		memset(c->name, 0, sizeof(c->name));
		if (ioctl(c->fd, DRM_IOCTL_VERSION, &v)) {
			close(c->fd);
			continue;
		}
		ncards++;
	}
}

static int wanted(const char *name, const char *want)
{
	return !want || strcmp(want, "all") == 0 || strcmp(want, name) == 0;
}

/* A dumb buffer of `c`, exported; -1 (and errno) if the driver refuses. */
static int export_dumb(struct card *c, uint32_t *handle)
{
	struct drm_mode_create_dumb bo = { .height = 16, .width = 64, .bpp = 32 };
	struct drm_prime_handle p = { .flags = O_RDWR | O_CLOEXEC };

	if (ioctl(c->fd, DRM_IOCTL_MODE_CREATE_DUMB, &bo))
		return -1;
	*handle = bo.handle;
	p.handle = bo.handle;
	if (ioctl(c->fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p)) {
		int err = errno;
		struct drm_gem_close gc = { .handle = bo.handle };

		ioctl(c->fd, DRM_IOCTL_GEM_CLOSE, &gc);
		errno = err;
		return -1;
	}
	return p.fd;
}

/* What user space does with the fd; returns how many steps the exporter allowed. */
static int use_fd(int fd, size_t size)
{
	int ok = 0;
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p != MAP_FAILED) {
		struct dma_buf_sync s = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };

		if (ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) == 0)
			ok++;
		memset(p, 0x5a, size);
		s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
		if (ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) == 0)
			ok++;
		munmap(p, size);
		ok++;
	}
	if (ioctl(fd, DMA_BUF_SET_NAME_B, "lab-prime") == 0)
		ok++;
	struct dma_buf_export_sync_file e = { .flags = DMA_BUF_SYNC_RW };
	if (ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e) == 0) {
		struct dma_buf_import_sync_file im = { .flags = DMA_BUF_SYNC_WRITE, .fd = e.fd };

		ok++;
		if (ioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &im) == 0)
			ok++;
		close(e.fd);
	}
	struct pollfd pf = { .fd = fd, .events = POLLIN | POLLOUT };
	if (poll(&pf, 1, 0) >= 0)
		ok++;
	return ok;
}

static int n;
static const char *want_exp, *want_imp;

struct tally {
	int exports, uses, imports;
};

/* Offer the exported `fd` to every card but `from` (-1: a buffer of no card). */
static void import_everywhere(int fd, int from, const char *exp_name, int it, long thread,
			      struct tally *t)
{
	for (int i = 0; i < ncards; i++) {
		struct card *im = &cards[i];
		struct drm_prime_handle p = { .fd = fd };

		if (i == from || !wanted(im->name, want_imp))
			continue;
		if (ioctl(im->fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p)) {
			if (it == 0 && thread == 0)
				printf("prime_matrix: %s -> %s: import refused: %s\n", exp_name,
				       im->name, strerror(errno));
			continue;
		}
		if (it == 0 && thread == 0)
			printf("prime_matrix: %s -> %s: imported\n", exp_name, im->name);
		t->imports++;
		struct drm_gem_close c = { .handle = p.handle };
		ioctl(im->fd, DRM_IOCTL_GEM_CLOSE, &c);
	}
}

static void *run(void *arg)
{
	long thread = (long)arg;
	struct tally *t = calloc(1, sizeof(*t));

	if (!t)
		die("calloc");
	/* Buffers of no card first. */
	if (want_exp && (strcmp(want_exp, "udmabuf") == 0 || strcmp(want_exp, "heap") == 0)) {
		for (int it = 0; it < n; it++) {
			size_t len = 64 * 16 * 4;
			int fd = want_exp[0] == 'h' ? new_heap_dmabuf(len) : new_udmabuf(len);

			if (fd < 0) {
				if (it == 0 && thread == 0)
					printf("prime_matrix: no %s buffer: %s\n", want_exp, strerror(errno));
				break;
			}
			t->exports++;
			t->uses += use_fd(fd, len) > 0;
			import_everywhere(fd, -1, want_exp, it, thread, t);
			close(fd);
		}
		return t;
	}
	for (int e = 0; e < ncards; e++) {
		struct card *ex = &cards[e];

		if (!wanted(ex->name, want_exp))
			continue;
		for (int it = 0; it < n; it++) {
			uint32_t handle = 0;
			int fd = export_dumb(ex, &handle);

			if (fd < 0) {
				if (it == 0 && thread == 0)
					printf("prime_matrix: %s exports no dumb buffer: %s\n", ex->name,
					       strerror(errno));
				break;
			}
			t->exports++;
			t->uses += use_fd(fd, 64 * 16 * 4) > 0;
			import_everywhere(fd, e, ex->name, it, thread, t);
			struct drm_gem_close c = { .handle = handle };
			ioctl(ex->fd, DRM_IOCTL_GEM_CLOSE, &c);
			close(fd);
		}
	}
	return t;
}

int main(int argc, char **argv)
{
	int threads = 1, opt;
	struct tally sum = { 0 };
	pthread_t tids[16];

	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt != 't' || (threads = atoi(optarg)) < 1 || threads > 16) {
			errno = 0;
			die("usage: %s [-t THREADS (1..16)] ITERATIONS [EXPORTER [IMPORTER]]", argv[0]);
		}
	}
	/* The positional arguments as if there had been no options (argv[0] kept for messages). */
	argv[optind - 1] = argv[0];
	argc -= optind - 1;
	argv += optind - 1;
	n = iterations(argc, argv);
	want_exp = argc > 2 ? argv[2] : NULL;
	want_imp = argc > 3 ? argv[3] : NULL;
	find_cards();
	if (ncards == 0) {
		errno = ENODEV;
		die("no DRM card under /dev/dri");
	}
	for (long i = 0; i < threads; i++)
		if (pthread_create(&tids[i], NULL, run, (void *)i))
			die("pthread_create");
	for (int i = 0; i < threads; i++) {
		struct tally *t;

		pthread_join(tids[i], (void **)&t);
		sum.exports += t->exports;
		sum.uses += t->uses;
		sum.imports += t->imports;
		free(t);
	}
	printf("prime_matrix: %d card(s), %d thread(s), %d export(s), %d fd use(s), %d import(s)\n",
	       ncards, threads, sum.exports, sum.uses, sum.imports);
	if (sum.exports == 0) {
		errno = 0;
		die("nothing was exported (cards: %d)", ncards);
	}
	return 0;
}
