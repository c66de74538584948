// SPDX-License-Identifier: GPL-2.0
/*
 * Scenarios that follow the dma-buf reservation-lock rules of the running
 * kernel. A correct tracer reports nothing for them; each one contains the
 * kind of legal traffic a naive checker would flag (nested same-class locks
 * inside a ww transaction, -EDEADLK with backoff, -EALREADY, exporter
 * callbacks that take the lock where they may).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>

#include "tsc_common.h"

/* ---- clean-i915-style-attach-transaction ---- */

/*
 * i915's attach callback runs a full ww transaction over its objects,
 * including the buffer's own resv. That is legal because the core invokes
 * attach without the lock. To exercise the backoff path for real, a helper
 * with an older acquire context holds one of the objects, so the
 * transaction gets a genuine -EDEADLK.
 */
struct tsc_i915 {
	struct dma_resv q, r;	/* the exporter's other objects */
	struct completion old_has_q;
	struct completion young_backed_off;
	struct completion old_done;
	int old_ret;
	int edeadlk, ealready;
	int attach_ret;
};

#define TSC_I915_NOBJ 3

static void tsc_i915_unlock_all(struct dma_resv **objs, bool *held)
{
	int i;

	for (i = 0; i < TSC_I915_NOBJ; i++) {
		if (held[i]) {
			dma_resv_unlock(objs[i]);
			held[i] = false;
		}
	}
}

static int tsc_i915_style_attach(struct dma_buf *dmabuf,
				 struct dma_buf_attachment *attach)
{
	struct tsc_buf *b = dmabuf->priv;
	struct tsc_i915 *s = b->priv;
	struct dma_resv *objs[TSC_I915_NOBJ] = { dmabuf->resv, &s->q, &s->r };
	bool held[TSC_I915_NOBJ] = { false };
	struct ww_acquire_ctx ctx;
	int contended = -1;
	int i, ret;

	/* The older context must exist before this one is initialised. */
	if (!wait_for_completion_timeout(&s->old_has_q, TSC_WAIT))
		pr_info("clean-i915-style-attach-transaction: helper late, no -EDEADLK expected\n");

	ww_acquire_init(&ctx, &reservation_ww_class);
retry:
	if (contended >= 0) {
		/* After backoff, sleep on the contended lock holding nothing. */
		dma_resv_lock_slow(objs[contended], &ctx);
		held[contended] = true;
	}
	for (i = 0; i < TSC_I915_NOBJ; i++) {
		if (i == contended)
			continue;
		ret = dma_resv_lock(objs[i], &ctx);
		if (ret == -EDEADLK) {
			/* Correct backoff: drop every lock of this context. */
			s->edeadlk++;
			tsc_i915_unlock_all(objs, held);
			contended = i;
			complete(&s->young_backed_off);
			goto retry;
		}
		if (ret) {
			tsc_i915_unlock_all(objs, held);
			goto out_fini;
		}
		held[i] = true;
	}

	/*
	 * An object listed twice (i915 hits this when a vma and its object
	 * share a resv): the context already holds it, so -EALREADY, and it
	 * must not be unlocked a second time.
	 */
	ret = dma_resv_lock(&s->q, &ctx);
	if (ret == -EALREADY)
		s->ealready++;
	else if (!ret)
		dma_resv_unlock(&s->q);	/* cannot happen: q is held */
	ret = 0;

	ww_acquire_done(&ctx);
	/* ... work on the locked objects would happen here ... */
	tsc_i915_unlock_all(objs, held);
out_fini:
	ww_acquire_fini(&ctx);
	s->attach_ret = ret;
	return ret;
}

const struct dma_buf_ops tsc_i915_style_dmabuf_ops = {
	.attach = tsc_i915_style_attach,
	.detach = tsc_exp_detach,
	.map_dma_buf = tsc_exp_map,
	.unmap_dma_buf = tsc_exp_unmap,
	.release = tsc_exp_release,
	.vmap = tsc_exp_vmap,
	.vunmap = tsc_exp_vunmap,
};

static int tsc_i915_old_fn(void *data)
{
	struct tsc_i915 *s = data;
	struct ww_acquire_ctx ctx;

	ww_acquire_init(&ctx, &reservation_ww_class);
	s->old_ret = dma_resv_lock(&s->q, &ctx);
	ww_acquire_done(&ctx);
	complete(&s->old_has_q);

	wait_for_completion_timeout(&s->young_backed_off, TSC_WAIT);
	/*
	 * Give the younger transaction time to enter dma_resv_lock_slow and
	 * sleep on q, so the slow path really waits.
	 */
	msleep(50);
	if (!s->old_ret)
		dma_resv_unlock(&s->q);
	ww_acquire_fini(&ctx);

	complete(&s->old_done);
	return 0;
}

int tsc_clean_i915_style_attach_transaction(void)
{
	const char *name = "clean-i915-style-attach-transaction";
	struct dma_buf_attachment *att;
	struct task_struct *t;
	struct tsc_i915 *s;
	struct tsc_buf *b;
	int ret = 0;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	dma_resv_init(&s->q);
	dma_resv_init(&s->r);
	init_completion(&s->old_has_q);
	init_completion(&s->young_backed_off);
	init_completion(&s->old_done);

	b = tsc_buf_create(&tsc_i915_style_dmabuf_ops, name);
	if (IS_ERR(b)) {
		ret = PTR_ERR(b);
		goto out_free;
	}
	b->priv = s;

	t = kthread_run(tsc_i915_old_fn, s, "tsc-i915-old");
	if (IS_ERR(t)) {
		ret = PTR_ERR(t);
		tsc_buf_put(b);
		goto out_free;
	}

	/* ops->attach runs the transaction, without the lock held. */
	att = dma_buf_attach(b->dmabuf, tsc_dev);

	if (!wait_for_completion_timeout(&s->old_done, TSC_WAIT)) {
		/* The helper may still use s: leak it rather than free it. */
		pr_info("%s: helper did not finish\n", name);
		return -ETIMEDOUT;
	}
	pr_info("%s: attach -> %ld; transaction over resv %px, %px, %px: -EDEADLK %d time(s) with backoff, -EALREADY %d time(s)\n",
		name, IS_ERR(att) ? PTR_ERR(att) : 0L, b->dmabuf->resv,
		&s->q, &s->r, s->edeadlk, s->ealready);

	if (IS_ERR(att))
		ret = PTR_ERR(att);
	else
		dma_buf_detach(b->dmabuf, att);
	tsc_buf_put(b);
	if (!ret && (s->edeadlk != 1 || s->ealready != 1))
		ret = -EPROTO;

out_free:
	dma_resv_fini(&s->r);
	dma_resv_fini(&s->q);
	kfree(s);
	return ret;
}

/* ---- clean-importer-locked-api ---- */

int tsc_clean_importer_locked_api(void)
{
	const char *name = "clean-importer-locked-api";
	struct dma_buf_attachment *att, *datt;
	struct dma_resv *resv;
	struct sg_table *sgt;
	struct tsc_buf *b;
	int ret = 0;

	b = tsc_buf_create(&tsc_dynamic_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);
	resv = b->dmabuf->resv;

	/* Static attachment (up to 6.15 the core pins and maps here). */
	att = dma_buf_attach(b->dmabuf, tsc_dev);
	if (IS_ERR(att)) {
		ret = PTR_ERR(att);
		goto out_put;
	}
	datt = tsc_attach_dynamic(b);
	if (IS_ERR(datt)) {
		ret = PTR_ERR(datt);
		goto out_detach;
	}

	dma_resv_lock(resv, NULL);

	sgt = dma_buf_map_attachment(att, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto out_unlock;
	}
	dma_buf_unmap_attachment(att, sgt, DMA_BIDIRECTIONAL);

	ret = dma_buf_pin(datt);
	if (ret)
		goto out_unlock;
	sgt = dma_buf_map_attachment(datt, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt))
		ret = PTR_ERR(sgt);
	else
		dma_buf_unmap_attachment(datt, sgt, DMA_BIDIRECTIONAL);
	dma_buf_unpin(datt);
	if (ret)
		goto out_unlock;

#if TSC_UNIVERSAL_CONVENTION
	/* 6.2+ only: before that vmap had no resv rule (dmabuf->lock). */
	{
		struct iosys_map map;

		ret = dma_buf_vmap(b->dmabuf, &map);
		if (!ret)
			dma_buf_vunmap(b->dmabuf, &map);
	}
#endif

out_unlock:
	dma_resv_unlock(resv);
	pr_info("%s: map/unmap, pin/map/unmap/unpin%s under resv %px: %d\n",
		name, TSC_UNIVERSAL_CONVENTION ? ", vmap/vunmap" : "", resv,
		ret);
	dma_buf_detach(b->dmabuf, datt);
out_detach:
	dma_buf_detach(b->dmabuf, att);
out_put:
	tsc_buf_put(b);
	return ret;
}

/* ---- clean-importer-unlocked-api ---- */

int tsc_clean_importer_unlocked_api(void)
{
	const char *name = "clean-importer-unlocked-api";
	struct dma_buf_attachment *att;
	struct iosys_map map;
	struct tsc_buf *b;
	int ret = 0;

	/*
	 * The dynamic exporter flavour: its begin/end_cpu_access take the
	 * resv themselves, which is legal as the core calls them unlocked.
	 */
	b = tsc_buf_create(&tsc_dynamic_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);

	att = dma_buf_attach(b->dmabuf, tsc_dev);
	if (IS_ERR(att)) {
		ret = PTR_ERR(att);
		goto out_put;
	}

#ifdef TSC_HAVE_MAP_UNLOCKED
	{
		struct sg_table *sgt;

		sgt = dma_buf_map_attachment_unlocked(att, DMA_BIDIRECTIONAL);
		if (IS_ERR(sgt)) {
			ret = PTR_ERR(sgt);
			goto out_detach;
		}
		dma_buf_unmap_attachment_unlocked(att, sgt, DMA_BIDIRECTIONAL);
	}
#endif

#ifdef TSC_HAVE_VMAP_UNLOCKED
	ret = dma_buf_vmap_unlocked(b->dmabuf, &map);
	if (ret)
		goto out_detach;
	dma_buf_vunmap_unlocked(b->dmabuf, &map);
#else
	/* Pre-6.2 the plain vmap is the unlocked API (it takes dmabuf->lock). */
	ret = dma_buf_vmap(b->dmabuf, &map);
	if (ret)
		goto out_detach;
	dma_buf_vunmap(b->dmabuf, &map);
#endif

	ret = dma_buf_begin_cpu_access(b->dmabuf, DMA_BIDIRECTIONAL);
	if (ret)
		goto out_detach;
	ret = dma_buf_end_cpu_access(b->dmabuf, DMA_BIDIRECTIONAL);

out_detach:
	dma_buf_detach(b->dmabuf, att);
	pr_info("%s: map/unmap_unlocked, vmap/vunmap%s, begin/end_cpu_access, detach, put on resv %px without holding it: %d\n",
		name,
#ifdef TSC_HAVE_VMAP_UNLOCKED
		"_unlocked",
#else
		" (pre-6.2)",
#endif
		b->dmabuf->resv, ret);
out_put:
	tsc_buf_put(b);
	return ret;
}
