/* Real dma-buf traffic between two drivers: udmabuf exports a memfd as a dma-buf, vgem
 * imports it (PRIME), then the handle is closed. Usage: udmabuf_vgem [iterations] */
#define _GNU_SOURCE
#include <linux/udmabuf.h>
#include <sys/mman.h>
#include "common.h"

int main(int argc, char **argv)
{
	int n = iterations(argc, argv);
	long size = 4 * sysconf(_SC_PAGESIZE);
	int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	int vgem = open_vgem();

	if (dev < 0)
		die("open /dev/udmabuf (kernel without CONFIG_UDMABUF?)");
	for (int i = 0; i < n; i++) {
		int memfd = memfd_create("lab-udmabuf", MFD_ALLOW_SEALING);
		struct udmabuf_create create = { 0 };
		int buf;

		if (memfd < 0)
			die("memfd_create");
		if (ftruncate(memfd, size))
			die("ftruncate");
		/* udmabuf refuses memfds that could shrink under it. */
		if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK))
			die("F_ADD_SEALS F_SEAL_SHRINK");
		create.memfd = memfd;
		create.offset = 0;
		create.size = size;
		create.flags = UDMABUF_FLAGS_CLOEXEC;
		buf = ioctl(dev, UDMABUF_CREATE, &create);
		if (buf < 0)
			die("UDMABUF_CREATE");
		import_and_close(vgem, buf);
		close(buf);
		close(memfd);
	}
	printf("udmabuf_vgem: %d udmabuf dma-bufs imported into vgem and released\n", n);
	return 0;
}
