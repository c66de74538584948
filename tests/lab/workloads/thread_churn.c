/* More live threads than the tracer has kernel-side thread slots (8192), each making hooked
 * dma-buf calls, then as many short-lived threads again (their thread ids reused from the
 * first wave's): the tracer must count the calls of threads it had no slot for, and must not
 * give a new thread the state (held locks) of an exited one.
 *
 * Wave 1: THREADS threads each sync a shared udmabuf (DMA_BUF_IOCTL_SYNC start and end, the
 * hooked dma_buf_begin/end_cpu_access) and then wait until all of them have, so all are alive
 * at once. Wave 2: the same number of threads, a few at a time, each syncing once and exiting.
 * Usage: thread_churn [threads] */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>

struct dma_buf_sync {
	uint64_t flags;
};

#define DMA_BUF_SYNC_READ (1 << 0)
#define DMA_BUF_SYNC_START (0 << 2)
#define DMA_BUF_SYNC_END (1 << 2)
#define DMA_BUF_IOCTL_SYNC _IOW('b', 0, struct dma_buf_sync)

static int buf;
static pthread_barrier_t all_synced;

static void sync_once(void)
{
	struct dma_buf_sync s = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ };

	if (ioctl(buf, DMA_BUF_IOCTL_SYNC, &s))
		die("DMA_BUF_IOCTL_SYNC start");
	s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
	if (ioctl(buf, DMA_BUF_IOCTL_SYNC, &s))
		die("DMA_BUF_IOCTL_SYNC end");
}

static void *wave1(void *arg)
{
	(void)arg;
	sync_once();
	pthread_barrier_wait(&all_synced);
	return NULL;
}

static void *wave2(void *arg)
{
	(void)arg;
	sync_once();
	return NULL;
}

static void spawn(pthread_t *t, pthread_attr_t *a, void *(*fn)(void *), int i)
{
	if (pthread_create(&t[i], a, fn, NULL))
		die("pthread_create");
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	pthread_attr_t a;

	buf = new_udmabuf(4096);
	if (buf < 0 || !t)
		die("a udmabuf (is /dev/udmabuf there?)");
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 64 << 10);
	if (pthread_barrier_init(&all_synced, NULL, (unsigned)n + 1))
		die("pthread_barrier_init");
	for (int i = 0; i < n; i++)
		spawn(t, &a, wave1, i);
	pthread_barrier_wait(&all_synced);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("wave 1: %d threads alive at once, each synced the buffer\n", n);
	for (int i = 0; i < n; i += 16) {
		int k = n - i < 16 ? n - i : 16;
		for (int j = 0; j < k; j++)
			spawn(t, &a, wave2, i + j);
		for (int j = 0; j < k; j++)
			pthread_join(t[i + j], NULL);
	}
	printf("wave 2: %d short-lived threads synced the buffer\n", n);
	return 0;
}
