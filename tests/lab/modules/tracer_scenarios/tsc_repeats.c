// SPDX-License-Identifier: GPL-2.0
/*
 * Repeated ww transactions: what the tracer's novelty filter keeps in the
 * kernel (a transaction whose chain of call sites it has sent once is not
 * sent again) must still be judged when something happens while it is held.
 * Each scenario runs the same transaction over three buffers' reservation
 * objects TSC_RPT_ROUNDS times from the same call sites, then does something
 * the engine judges against the held locks: a fence wait (a bug), a return
 * to user space (a bug), a map call of a held buffer (legal).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/err.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "tsc_common.h"

#define TSC_RPT_BUFS 3
#define TSC_RPT_ROUNDS 20

struct tsc_rpt {
	struct tsc_buf *b[TSC_RPT_BUFS];
	struct ww_acquire_ctx ctx;
};

static void tsc_rpt_put(struct tsc_rpt *r)
{
	int i;

	for (i = 0; i < TSC_RPT_BUFS; i++)
		if (!IS_ERR_OR_NULL(r->b[i]))
			tsc_buf_put(r->b[i]);
}

static int tsc_rpt_create(struct tsc_rpt *r, const char *name)
{
	int i;

	for (i = 0; i < TSC_RPT_BUFS; i++) {
		r->b[i] = tsc_buf_create(&tsc_static_dmabuf_ops, name);
		if (IS_ERR(r->b[i])) {
			int ret = PTR_ERR(r->b[i]);

			r->b[i] = NULL;
			tsc_rpt_put(r);
			return ret;
		}
	}
	return 0;
}

/* Locks every buffer's resv under r->ctx, from one call site. */
static noinline int tsc_rpt_lock_all(struct tsc_rpt *r)
{
	int i, ret;

	ww_acquire_init(&r->ctx, &reservation_ww_class);
	for (i = 0; i < TSC_RPT_BUFS; i++) {
		/* Uncontended: no -EDEADLK here; still unwind correctly. */
		ret = dma_resv_lock(r->b[i]->dmabuf->resv, &r->ctx);
		if (ret) {
			while (i-- > 0)
				dma_resv_unlock(r->b[i]->dmabuf->resv);
			ww_acquire_fini(&r->ctx);
			return ret;
		}
	}
	ww_acquire_done(&r->ctx);
	return 0;
}

static noinline void tsc_rpt_unlock_all(struct tsc_rpt *r)
{
	int i;

	for (i = 0; i < TSC_RPT_BUFS; i++)
		dma_resv_unlock(r->b[i]->dmabuf->resv);
	ww_acquire_fini(&r->ctx);
}

/* TSC_RPT_ROUNDS clean transactions: the tracer sends the first only. */
static int tsc_rpt_rounds(struct tsc_rpt *r)
{
	int i, ret;

	for (i = 0; i < TSC_RPT_ROUNDS; i++) {
		ret = tsc_rpt_lock_all(r);
		if (ret)
			return ret;
		tsc_rpt_unlock_all(r);
	}
	return 0;
}

/* ---- fence-wait-in-repeated-txn ---- */

static noinline long tsc_rpt_fence_wait(struct tsc_fence *f)
{
	tsc_fence_signal_in(f, 100);
	return dma_fence_wait(&f->base, false);
}

int tsc_fence_wait_in_repeated_txn(void)
{
	const char *name = "fence-wait-in-repeated-txn";
	struct tsc_fence *f;
	struct tsc_rpt r = {};
	long ret;

	ret = tsc_rpt_create(&r, name);
	if (ret)
		return ret;
	f = tsc_fence_create();
	if (!f) {
		tsc_rpt_put(&r);
		return -ENOMEM;
	}
	ret = tsc_rpt_rounds(&r);
	if (!ret)
		ret = tsc_rpt_lock_all(&r);
	if (!ret) {
		/* The bug: an uninterruptible fence wait under the transaction's locks. */
		ret = tsc_rpt_fence_wait(f);
		tsc_rpt_unlock_all(&r);
	}
	pr_info("%s: %d transactions, then a fence wait under the last: %ld\n",
		name, TSC_RPT_ROUNDS + 1, ret);
	tsc_fence_done(f);
	tsc_rpt_put(&r);
	return ret < 0 ? (int)ret : 0;
}

/* ---- clean-map-in-repeated-txn ---- */

int tsc_clean_map_in_repeated_txn(void)
{
	const char *name = "clean-map-in-repeated-txn";
	struct dma_buf_attachment *att;
	struct sg_table *sgt;
	struct tsc_rpt r = {};
	int i, ret;

	ret = tsc_rpt_create(&r, name);
	if (ret)
		return ret;
	att = dma_buf_attach(r.b[0]->dmabuf, tsc_dev);
	if (IS_ERR(att)) {
		tsc_rpt_put(&r);
		return PTR_ERR(att);
	}
	/*
	 * Legal: the importer maps buffer 0 while its transaction holds
	 * buffer 0's lock; every fifth transaction does, the others only lock
	 * and unlock (those the tracer keeps in the kernel).
	 */
	for (i = 0; i < TSC_RPT_ROUNDS && !ret; i++) {
		ret = tsc_rpt_lock_all(&r);
		if (ret)
			break;
		if (i % 5 == 4) {
			sgt = dma_buf_map_attachment(att, DMA_BIDIRECTIONAL);
			if (IS_ERR(sgt))
				ret = PTR_ERR(sgt);
			else
				dma_buf_unmap_attachment(att, sgt, DMA_BIDIRECTIONAL);
		}
		tsc_rpt_unlock_all(&r);
	}
	pr_info("%s: %d transactions, a map under every fifth: %d\n", name, i, ret);
	dma_buf_detach(r.b[0]->dmabuf, att);
	tsc_rpt_put(&r);
	return ret;
}

/* ---- return-to-user-in-repeated-txn ---- */

static DEFINE_MUTEX(tsc_rpt_rtu_mutex);
static struct tsc_rpt *tsc_rpt_rtu;

int tsc_return_to_user_in_repeated_txn(void)
{
	const char *name = "return-to-user-in-repeated-txn";
	struct tsc_rpt *r;
	int ret;

	mutex_lock(&tsc_rpt_rtu_mutex);
	if (tsc_rpt_rtu) {
		ret = -EBUSY;
		goto out;
	}
	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r) {
		ret = -ENOMEM;
		goto out;
	}
	ret = tsc_rpt_create(r, name);
	if (!ret)
		ret = tsc_rpt_rounds(r);
	/* The bug: the last transaction returns to user space holding its locks. */
	if (!ret)
		ret = tsc_rpt_lock_all(r);
	if (ret) {
		tsc_rpt_put(r);
		kfree(r);
		goto out;
	}
	tsc_rpt_rtu = r;
	pr_info("%s: returning to user space holding %d resvs\n", name, TSC_RPT_BUFS);
out:
	mutex_unlock(&tsc_rpt_rtu_mutex);
	return ret;
}

int tsc_return_to_user_in_repeated_txn_release(void)
{
	mutex_lock(&tsc_rpt_rtu_mutex);
	if (tsc_rpt_rtu) {
		/*
		 * Possibly another task than the locker: fine without
		 * CONFIG_DEBUG_MUTEXES, as in return-to-user-holding.
		 */
		tsc_rpt_unlock_all(tsc_rpt_rtu);
		tsc_rpt_put(tsc_rpt_rtu);
		kfree(tsc_rpt_rtu);
		tsc_rpt_rtu = NULL;
	}
	mutex_unlock(&tsc_rpt_rtu_mutex);
	return 0;
}

void tsc_repeats_cleanup(void)
{
	tsc_return_to_user_in_repeated_txn_release();
}
