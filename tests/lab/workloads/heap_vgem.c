/* Real dma-buf traffic from a dma-heap: allocate from /dev/dma_heap/system, import into vgem
 * (PRIME), close the handle. Usage: heap_vgem [iterations] */
#define _GNU_SOURCE
#include <linux/dma-heap.h>
#include "common.h"

int main(int argc, char **argv)
{
	int n = iterations(argc, argv);
	int heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);
	int vgem = open_vgem();

	if (heap < 0)
		die("open /dev/dma_heap/system (kernel without CONFIG_DMABUF_HEAPS_SYSTEM?)");
	for (int i = 0; i < n; i++) {
		struct dma_heap_allocation_data a = {
			.len = 4 * sysconf(_SC_PAGESIZE),
			.fd_flags = O_RDWR | O_CLOEXEC,
		};

		if (ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &a))
			die("DMA_HEAP_IOCTL_ALLOC");
		import_and_close(vgem, a.fd);
		close(a.fd);
	}
	printf("heap_vgem: %d system-heap dma-bufs imported into vgem and released\n", n);
	return 0;
}
