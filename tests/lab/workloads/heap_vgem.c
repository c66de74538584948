/* Real dma-buf traffic from a dma-heap: allocate from /dev/dma_heap/system, import into vgem
 * (PRIME), close the handle. Usage: heap_vgem [iterations] */
#define _GNU_SOURCE
#include "common.h"

int main(int argc, char **argv)
{
	int n = iterations(argc, argv);
	int vgem = open_vgem();

	for (int i = 0; i < n; i++) {
		int buf = new_heap_dmabuf(4 * sysconf(_SC_PAGESIZE));

		if (buf < 0)
			die("a system dma-heap buffer (kernel without CONFIG_DMABUF_HEAPS_SYSTEM?)");
		import_and_close(vgem, buf);
		close(buf);
	}
	printf("heap_vgem: %d system-heap dma-bufs imported into vgem and released\n", n);
	return 0;
}
