// SPDX-License-Identifier: GPL-2.0
/*
 * Scenarios modelled on real drivers' code: the legal patterns a checker
 * written to one reading of the rules gets wrong (each named after the driver
 * code it stands for), and the public bug shapes that do not deadlock.
 *
 * Where the real code runs through a DRM helper, the scenario calls that
 * helper (drm_modeset_lock, drm_modeset_backoff), so the tracer sees the same
 * functions and stacks it would see on the real driver.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <drm/drm_modeset_lock.h>
#include <linux/delay.h>
#include <linux/dma-fence.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <linux/ww_mutex.h>

#include "tsc_common.h"

/* ---- clean-resv-txn-inside-modeset-ctx ---- */

/*
 * i915's atomic commit: drm_mode_atomic_ioctl holds modeset locks under a
 * crtc_ww_class acquire context while ->prepare_fb (intel_prepare_plane_fb ->
 * intel_plane_pin_fb) pins the framebuffer's object in a reservation
 * transaction of its own (i915_gem_ww_ctx_init: ww_acquire_init on
 * reservation_ww_class). Two live contexts of different ww classes: legal
 * (lockdep keys each context on its class's acquire key).
 */
struct tsc_modeset {
	struct drm_modeset_lock crtc, plane;
	struct drm_modeset_acquire_ctx mctx;
	struct dma_resv fb_obj;
	struct ww_acquire_ctx rctx;
};

static int tsc_prepare_fb(struct tsc_modeset *s, struct tsc_buf *b)
{
	int ret;

	ww_acquire_init(&s->rctx, &reservation_ww_class);
	ret = dma_resv_lock_interruptible(b->dmabuf->resv, &s->rctx);
	if (ret)
		goto out;
	ret = dma_resv_lock_interruptible(&s->fb_obj, &s->rctx);
	if (ret) {
		dma_resv_unlock(b->dmabuf->resv);
		goto out;
	}
	ww_acquire_done(&s->rctx);
	/* ... pin and fence the framebuffer ... */
	dma_resv_unlock(&s->fb_obj);
	dma_resv_unlock(b->dmabuf->resv);
out:
	ww_acquire_fini(&s->rctx);
	return ret;
}

int tsc_clean_resv_txn_inside_modeset_ctx(void)
{
	const char *name = "clean-resv-txn-inside-modeset-ctx";
	struct tsc_modeset *s;
	struct tsc_buf *b;
	int ret;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	b = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(b)) {
		kfree(s);
		return PTR_ERR(b);
	}
	drm_modeset_lock_init(&s->crtc);
	drm_modeset_lock_init(&s->plane);
	dma_resv_init(&s->fb_obj);

	drm_modeset_acquire_init(&s->mctx, DRM_MODESET_ACQUIRE_INTERRUPTIBLE);
retry:
	ret = drm_modeset_lock(&s->crtc, &s->mctx);
	if (!ret)
		ret = drm_modeset_lock(&s->plane, &s->mctx);
	if (ret == -EDEADLK) {
		ret = drm_modeset_backoff(&s->mctx);
		if (!ret)
			goto retry;
	}
	if (!ret)
		ret = tsc_prepare_fb(s, b);
	drm_modeset_drop_locks(&s->mctx);
	drm_modeset_acquire_fini(&s->mctx);

	pr_info("%s: modeset locks %px, %px under ctx %px; reservation txn over %px, %px: %d\n",
		name, &s->crtc, &s->plane, &s->mctx, b->dmabuf->resv,
		&s->fb_obj, ret);
	dma_resv_fini(&s->fb_obj);
	tsc_buf_put(b);
	kfree(s);
	return ret;
}

/* ---- ww-second-ctx-same-class ---- */

/*
 * The bug the rule is for: a second reservation transaction started while the
 * first still holds its locks (a helper that runs its own drm_exec / ww ctx,
 * called from inside another one). Two contexts of one class can wound or
 * wait on each other; lockdep reports it as recursive locking of
 * reservation_ww_class_acquire. No contention here, so nothing blocks.
 */
static noinline int tsc_helper_with_own_txn(struct dma_resv *obj)
{
	struct ww_acquire_ctx inner;
	int ret;

	ww_acquire_init(&inner, &reservation_ww_class);
	ret = dma_resv_lock(obj, &inner);
	if (!ret)
		dma_resv_unlock(obj);
	ww_acquire_fini(&inner);
	return ret;
}

/* Two fresh reservation objects (kzalloc + dma_resv_init), or -ENOMEM. */
static int tsc_resv_pair_new(struct dma_resv **a, struct dma_resv **b)
{
	*a = kzalloc(sizeof(**a), GFP_KERNEL);
	*b = kzalloc(sizeof(**b), GFP_KERNEL);
	if (!*a || !*b) {
		kfree(*a);
		kfree(*b);
		return -ENOMEM;
	}
	dma_resv_init(*a);
	dma_resv_init(*b);
	return 0;
}

static void tsc_resv_pair_free(struct dma_resv *a, struct dma_resv *b)
{
	dma_resv_fini(b);
	dma_resv_fini(a);
	kfree(b);
	kfree(a);
}

int tsc_ww_second_ctx_same_class(void)
{
	struct ww_acquire_ctx outer;
	struct dma_resv *a, *b;
	int ret;

	if (tsc_resv_pair_new(&a, &b))
		return -ENOMEM;
	ww_acquire_init(&outer, &reservation_ww_class);
	ret = dma_resv_lock(a, &outer);
	if (!ret) {
		ret = tsc_helper_with_own_txn(b);
		dma_resv_unlock(a);
	}
	ww_acquire_fini(&outer);
	pr_info("ww-second-ctx-same-class: outer ctx holds %px, inner ctx locked %px: %d\n",
		a, b, ret);
	tsc_resv_pair_free(a, b);
	return ret;
}

/* ---- clean-opposite-order-transactions ---- */

/*
 * amdgpu's command submission locks the VM's page-directory BO and the BO
 * list in one ww transaction, from two different functions; another
 * submission meets the same BOs in the other order. Objects of a driver's own
 * ww class, never seen as dma-bufs: a checker that classes them by call site
 * must still not order two locks of one context.
 */
static DEFINE_WW_CLASS(tsc_bo_ww_class);

static noinline int tsc_vm_lock_pd(struct ww_mutex *m, struct ww_acquire_ctx *c)
{
	return ww_mutex_lock(m, c);
}

static noinline int tsc_bo_list_lock(struct ww_mutex *m,
				     struct ww_acquire_ctx *c)
{
	return ww_mutex_lock(m, c);
}

int tsc_clean_opposite_order_transactions(void)
{
	struct ww_mutex *pd, *bo;
	struct ww_acquire_ctx c;
	int ret;

	pd = kzalloc(sizeof(*pd), GFP_KERNEL);
	bo = kzalloc(sizeof(*bo), GFP_KERNEL);
	if (!pd || !bo) {
		kfree(pd);
		kfree(bo);
		return -ENOMEM;
	}
	ww_mutex_init(pd, &tsc_bo_ww_class);
	ww_mutex_init(bo, &tsc_bo_ww_class);

	ww_acquire_init(&c, &tsc_bo_ww_class);
	ret = tsc_vm_lock_pd(pd, &c);
	if (!ret) {
		ret = tsc_bo_list_lock(bo, &c);
		if (!ret)
			ww_mutex_unlock(bo);
		ww_mutex_unlock(pd);
	}
	ww_acquire_fini(&c);

	if (!ret) {
		ww_acquire_init(&c, &tsc_bo_ww_class);
		ret = tsc_bo_list_lock(bo, &c);
		if (!ret) {
			ret = tsc_vm_lock_pd(pd, &c);
			if (!ret)
				ww_mutex_unlock(pd);
			ww_mutex_unlock(bo);
		}
		ww_acquire_fini(&c);
	}
	pr_info("clean-opposite-order-transactions: %px then %px, then %px then %px: %d\n",
		pd, bo, bo, pd, ret);
	ww_mutex_destroy(bo);
	ww_mutex_destroy(pd);
	kfree(bo);
	kfree(pd);
	return ret;
}

/* ---- static-importer-map-of-pin-exporter ---- */

/*
 * A static importer (a camera or display driver: dma_buf_attach, no
 * importer_ops) maps a buffer of a pin-capable exporter (amdgpu, xe) without
 * taking the reservation lock. Before 6.2 that is legal: the attach mapped
 * and cached the sg_table, and dma_buf_map_attachment returns it before its
 * only assert, which is for dynamic importers. From 6.2 map asserts the lock
 * for every attachment: the camera-driver bug.
 */
int tsc_static_importer_map_of_pin_exporter(void)
{
	const char *name = "static-importer-map-of-pin-exporter";
	struct dma_buf_attachment *att;
	struct sg_table *sgt;
	struct tsc_buf *b;
	int ret = 0;

	b = tsc_buf_create(&tsc_dynamic_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);
	att = dma_buf_attach(b->dmabuf, tsc_dev);
	if (IS_ERR(att)) {
		ret = PTR_ERR(att);
		goto out;
	}
	sgt = dma_buf_map_attachment(att, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt))
		ret = PTR_ERR(sgt);
	else
		dma_buf_unmap_attachment(att, sgt, DMA_BIDIRECTIONAL);
	pr_info("%s: static attachment mapped without resv %px: %d\n", name,
		b->dmabuf->resv, ret);
	dma_buf_detach(b->dmabuf, att);
out:
	tsc_buf_put(b);
	return ret;
}

/* ---- clean-core-wait-in-attach ---- */

/*
 * A static importer of a pin-capable exporter whose buffer carries a pending
 * kernel fence (an eviction copy in flight). The core maps for the importer
 * under a reservation lock it takes itself, uninterruptibly, and waits for the
 * kernel fences there: 6.1-6.15 in dma_buf_dynamic_attach -> __map_dma_buf,
 * 6.16+ in dma_buf_map_attachment_unlocked -> dma_buf_map_attachment. The
 * core's design, not the importer's or the exporter's doing.
 */
int tsc_clean_core_wait_in_attach(void)
{
	const char *name = "clean-core-wait-in-attach";
	struct dma_buf_attachment *att;
	struct tsc_fence *f;
	struct sg_table *sgt = NULL;
	struct tsc_buf *b;
	int ret;

	b = tsc_buf_create(&tsc_dynamic_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);
	f = tsc_fence_create();
	if (!f) {
		tsc_buf_put(b);
		return -ENOMEM;
	}

	/* The exporter's eviction: a kernel fence on the buffer. */
	dma_resv_lock(b->dmabuf->resv, NULL);
	ret = dma_resv_reserve_fences(b->dmabuf->resv, 1);
	if (!ret)
		dma_resv_add_fence(b->dmabuf->resv, &f->base,
				   DMA_RESV_USAGE_KERNEL);
	dma_resv_unlock(b->dmabuf->resv);
	if (ret)
		goto out_fence;
	tsc_fence_signal_in(f, 100);

	att = dma_buf_attach(b->dmabuf, tsc_dev);
	if (IS_ERR(att)) {
		ret = PTR_ERR(att);
		goto out_fence;
	}
#ifdef TSC_HAVE_MAP_UNLOCKED
	sgt = dma_buf_map_attachment_unlocked(att, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt))
		ret = PTR_ERR(sgt);
	else
		dma_buf_unmap_attachment_unlocked(att, sgt, DMA_BIDIRECTIONAL);
#endif
	dma_buf_detach(b->dmabuf, att);
	pr_info("%s: static attach + map of a fenced pin-capable buffer (resv %px): %d\n",
		name, b->dmabuf->resv, ret);
out_fence:
	tsc_fence_done(f);
	tsc_buf_put(b);
	return ret;
}

/* ---- importer-put-locked ---- */

/*
 * An importer drops its buffer reference while holding the buffer's
 * reservation lock. dma_buf_put takes no lock, so nothing deadlocks here, but
 * the documented convention (6.2+) lists put among the calls made without the
 * lock: the last put's release runs as if unlocked. A convention warning.
 */
int tsc_importer_put_locked(void)
{
	const char *name = "importer-put-locked";
	struct tsc_buf *b;

	b = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);
	get_dma_buf(b->dmabuf);
	dma_resv_lock(b->dmabuf->resv, NULL);
	dma_buf_put(b->dmabuf);	/* not the last reference */
	dma_resv_unlock(b->dmabuf->resv);
	pr_info("%s: dma_buf_put under resv %px\n", name, b->dmabuf->resv);
	tsc_buf_put(b);
	return 0;
}

/* ---- resv-lock-after-fini ---- */

/*
 * xe (2026): a teardown path locked a BO's reservation object after
 * dma_resv_fini (the object was being freed). On a production kernel the
 * ww_mutex still "works" until the memory is reused: a use-after-free lockdep
 * cannot see. Here the memory stays allocated, so nothing breaks.
 */
static noinline void tsc_bo_teardown_unlock_late(struct dma_resv *resv)
{
	dma_resv_lock(resv, NULL);
	dma_resv_unlock(resv);
}

int tsc_resv_lock_after_fini(void)
{
	struct dma_resv *resv;

	resv = kzalloc(sizeof(*resv), GFP_KERNEL);
	if (!resv)
		return -ENOMEM;
	dma_resv_init(resv);
	dma_resv_lock(resv, NULL);
	dma_resv_unlock(resv);
	dma_resv_fini(resv);
	tsc_bo_teardown_unlock_late(resv);
	pr_info("resv-lock-after-fini: locked resv %px after dma_resv_fini\n",
		resv);
	kfree(resv);
	return 0;
}

/* ---- clean-unlock-unseen-by-hooks ---- */

/*
 * Not a driver pattern: what a skipped unlock program leaves behind. On a
 * kernel that preempts BPF programs, or while a BPF map syscall runs on the
 * CPU, the kernel can skip the tracer's ww_mutex_unlock program: the lock
 * looks held although it is free. Here the release goes through the base
 * mutex, which no hook sees, so the miss is certain. Locking it again later
 * must not be a recursive lock: the tracer checks each held lock's owner word
 * before judging and forgets the ones the thread no longer owns.
 */
static noinline void tsc_release_unseen(struct dma_resv *resv)
{
	resv->lock.ctx = NULL;	/* what __ww_mutex_unlock does first */
	mutex_unlock(&resv->lock.base);
}

static noinline void tsc_lock_again_after_unseen_release(struct dma_resv *resv)
{
	dma_resv_lock(resv, NULL);
	dma_resv_unlock(resv);
}

int tsc_clean_unlock_unseen_by_hooks(void)
{
	struct ww_acquire_ctx ctx;
	struct dma_resv *a, *b;

	if (tsc_resv_pair_new(&a, &b))
		return -ENOMEM;
	ww_acquire_init(&ctx, &reservation_ww_class);
	/* b nested under a: both go to the tracer as held. */
	dma_resv_lock(a, &ctx);
	dma_resv_lock(b, &ctx);
	tsc_release_unseen(a);
	dma_resv_unlock(b);
	ww_acquire_fini(&ctx);
	tsc_lock_again_after_unseen_release(a);
	pr_info("clean-unlock-unseen-by-hooks: resv %px released unseen, locked again\n",
		a);
	tsc_resv_pair_free(a, b);
	return 0;
}
