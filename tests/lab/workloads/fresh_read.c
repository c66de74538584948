/* fresh_read FILE: read FILE once into freshly mapped, never touched anonymous memory, so the
 * kernel's copy_to_user faults on a page of a mapping with no anon_vma yet (the fault cannot be
 * served under the per-VMA lock and takes mmap_lock). Prints what it read. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fresh_read FILE\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	char *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	ssize_t n = read(fd, buf, 4096);
	if (n < 0) {
		perror("read");
		return 1;
	}
	fwrite(buf, 1, (size_t)n, stdout);
	printf("fresh_read: %zd bytes\n", n);
	return 0;
}
