/* Real dma-buf traffic between two drivers: udmabuf exports a memfd as a dma-buf, vgem
 * imports it (PRIME), then the handle is closed. Usage: udmabuf_vgem [iterations] */
#define _GNU_SOURCE
#include "common.h"

int main(int argc, char **argv)
{
	int n = iterations(argc, argv);
	int vgem = open_vgem();

	for (int i = 0; i < n; i++) {
		int buf = new_udmabuf(4 * sysconf(_SC_PAGESIZE));

		if (buf < 0)
			die("UDMABUF_CREATE (kernel without CONFIG_UDMABUF?)");
		import_and_close(vgem, buf);
		close(buf);
	}
	printf("udmabuf_vgem: %d udmabuf dma-bufs imported into vgem and released\n", n);
	return 0;
}
