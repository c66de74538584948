// SPDX-License-Identifier: GPL-2.0
/*
 * Scenarios that break the dma-buf reservation-lock rules. Every one must
 * produce a tracer finding on kernels where the scenario exists.
 *
 * The self-deadlocks are real (a production kernel has no lockdep to stop
 * them), so they run in a helper kthread that stays blocked forever while
 * the trigger returns. The guest is expected to end with poweroff -f; the
 * module then cannot be unloaded (the blocked helper runs module code and
 * the leaked buffer holds a module reference).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/dma-fence.h>
#include <linux/kthread.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#include "tsc_common.h"

/* ---- exporters whose locked callbacks take the lock again ---- */

/*
 * The bug under test: the core holds dmabuf->resv while invoking this
 * callback, and the exporter locks it again (the radeon pin chain from the
 * review thread; panfrost/lima pin around v6.10). dma_resv_lock() is inline,
 * so the tracer sees ww_mutex_lock on an address this task already holds,
 * with the callback as the caller. Always inlined so that the callback, not
 * a helper, is ww_mutex_lock's caller in the stack.
 */
static __always_inline void tsc_relock(struct dma_buf *dmabuf, const char *cb,
				       void *caller)
{
	struct tsc_buf *b = dmabuf->priv;

	pr_info("%s: exporter %s callback (called from %pS) re-locks resv %px, which the core holds\n",
		dmabuf->exp_name, cb, caller, dmabuf->resv);
	complete(&b->about_to_block);
	dma_resv_lock(dmabuf->resv, NULL);
	/* Unreachable on a real ww_mutex: the owner waits for itself. */
	dma_resv_unlock(dmabuf->resv);
}

static int tsc_relock_pin(struct dma_buf_attachment *attach)
{
	tsc_relock(attach->dmabuf, "pin", __builtin_return_address(0));
	return tsc_exp_pin(attach);
}

static struct sg_table *tsc_relock_map_dma_buf(struct dma_buf_attachment *attach,
					       enum dma_data_direction dir)
{
	tsc_relock(attach->dmabuf, "map_dma_buf", __builtin_return_address(0));
	return tsc_exp_map(attach, dir);
}

static int tsc_relock_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	tsc_relock(dmabuf, "vmap", __builtin_return_address(0));
	return tsc_exp_vmap(dmabuf, map);
}

const struct dma_buf_ops tsc_relock_pin_dmabuf_ops = {
	.attach = tsc_exp_attach,
	.detach = tsc_exp_detach,
	.pin = tsc_relock_pin,
	.unpin = tsc_exp_unpin,
	.map_dma_buf = tsc_exp_map,
	.unmap_dma_buf = tsc_exp_unmap,
	.release = tsc_exp_release,
	.vmap = tsc_exp_vmap,
	.vunmap = tsc_exp_vunmap,
};

/* No pin: a static exporter, so attach does not map on any kernel. */
const struct dma_buf_ops tsc_relock_map_dmabuf_ops = {
	.attach = tsc_exp_attach,
	.detach = tsc_exp_detach,
	.map_dma_buf = tsc_relock_map_dma_buf,
	.unmap_dma_buf = tsc_exp_unmap,
	.release = tsc_exp_release,
	.vmap = tsc_exp_vmap,
	.vunmap = tsc_exp_vunmap,
};

const struct dma_buf_ops tsc_relock_vmap_dmabuf_ops = {
	.attach = tsc_exp_attach,
	.detach = tsc_exp_detach,
	.map_dma_buf = tsc_exp_map,
	.unmap_dma_buf = tsc_exp_unmap,
	.release = tsc_exp_release,
	.vmap = tsc_relock_vmap,
	.vunmap = tsc_exp_vunmap,
};

/* ---- running a self-deadlock in a helper thread ---- */

/*
 * Handed to the helper and deliberately leaked: the helper never finishes,
 * so nobody could free it safely.
 */
struct tsc_blocker {
	const char *name;
	struct tsc_buf *b;
	int (*body)(struct tsc_blocker *bl);
	bool returned;
};

static int tsc_blocker_fn(void *data)
{
	struct tsc_blocker *bl = data;
	int ret;

	ret = bl->body(bl);

	/* Only reached if the kernel did not deadlock after all. */
	pr_info("%s: helper returned %d without deadlocking (unexpected)\n",
		bl->name, ret);
	WRITE_ONCE(bl->returned, true);
	complete(&bl->b->about_to_block);
	tsc_buf_put(bl->b);
	module_put_and_kthread_exit(0);
	return 0;
}

static int tsc_run_blocker(const char *name, const char *comm,
			   const struct dma_buf_ops *ops,
			   int (*body)(struct tsc_blocker *bl))
{
	struct task_struct *t;
	struct tsc_blocker *bl;
	int i;

	bl = kzalloc(sizeof(*bl), GFP_KERNEL);
	if (!bl)
		return -ENOMEM;
	bl->name = name;
	bl->body = body;
	bl->b = tsc_buf_create(ops, name);
	if (IS_ERR(bl->b)) {
		int ret = PTR_ERR(bl->b);

		kfree(bl);
		return ret;
	}

	/* The helper runs module code until the guest powers off. */
	__module_get(THIS_MODULE);
	t = kthread_run(tsc_blocker_fn, bl, "%s", comm);
	if (IS_ERR(t)) {
		module_put(THIS_MODULE);
		tsc_buf_put(bl->b);
		kfree(bl);
		return PTR_ERR(t);
	}
	get_task_struct(t);

	if (!wait_for_completion_timeout(&bl->b->about_to_block, TSC_WAIT)) {
		pr_info("%s: helper %d never reached the blocking call\n",
			name, task_pid_nr(t));
		put_task_struct(t);
		return -ETIMEDOUT;
	}

	/*
	 * The completion fires just before the lock call. On a self-deadlock
	 * the mutex code first spins on the owner (itself, on-CPU) until a
	 * reschedule is due, then sleeps uninterruptibly: wait for the sleep so
	 * the trigger returns only after the relock attempt really happened.
	 */
	for (i = 0; i < 150; i++) {
		if (READ_ONCE(bl->returned) ||
		    (READ_ONCE(t->__state) & TASK_UNINTERRUPTIBLE))
			break;
		msleep(20);
	}

	if (READ_ONCE(bl->returned)) {
		put_task_struct(t);
		return -EPROTO;
	}
	pr_info("%s: helper %d (%s) is %s in the self-deadlocking lock (intended; it never returns)\n",
		name, task_pid_nr(t), comm,
		(READ_ONCE(t->__state) & TASK_UNINTERRUPTIBLE) ?
			"asleep" : "still spinning");
	put_task_struct(t);
	return 0;
}

/* exporter-pin-relock */
static int tsc_pin_relock_body(struct tsc_blocker *bl)
{
	struct dma_buf_attachment *att;

	/*
	 * Static importer of a dynamic (pin-capable) exporter. Up to 6.15 the
	 * core caches the mapping at attach time: it locks the resv and calls
	 * ops->pin inside dma_buf_attach. From 6.16 attach no longer maps, and
	 * the pin happens under the lock in the map call instead. Both are the
	 * core holding the lock when the exporter's pin relocks.
	 */
	att = dma_buf_attach(bl->b->dmabuf, tsc_dev);
	if (IS_ERR(att))
		return PTR_ERR(att);

	pr_info("%s: attach did not pin; pinning through a static map instead\n",
		bl->name);
#ifdef TSC_HAVE_MAP_UNLOCKED
	{
		struct sg_table *sgt;

		sgt = dma_buf_map_attachment_unlocked(att, DMA_BIDIRECTIONAL);
		if (!IS_ERR(sgt))
			dma_buf_unmap_attachment_unlocked(att, sgt,
							  DMA_BIDIRECTIONAL);
	}
#endif
	dma_buf_detach(bl->b->dmabuf, att);
	return -EPROTO;
}

int tsc_exporter_pin_relock(void)
{
	return tsc_run_blocker("exporter-pin-relock", "tsc-pin-relock",
			       &tsc_relock_pin_dmabuf_ops, tsc_pin_relock_body);
}

/* exporter-map-relock */
static int tsc_map_relock_body(struct tsc_blocker *bl)
{
	struct dma_buf_attachment *att;

	att = dma_buf_attach(bl->b->dmabuf, tsc_dev);
	if (IS_ERR(att))
		return PTR_ERR(att);
#ifdef TSC_HAVE_MAP_UNLOCKED
	{
		struct sg_table *sgt;

		/* The core locks the resv, then calls ops->map_dma_buf. */
		sgt = dma_buf_map_attachment_unlocked(att, DMA_BIDIRECTIONAL);
		if (!IS_ERR(sgt))
			dma_buf_unmap_attachment_unlocked(att, sgt,
							  DMA_BIDIRECTIONAL);
	}
#endif
	dma_buf_detach(bl->b->dmabuf, att);
	return -EPROTO;
}

int tsc_exporter_map_relock(void)
{
	return tsc_run_blocker("exporter-map-relock", "tsc-map-relock",
			       &tsc_relock_map_dmabuf_ops, tsc_map_relock_body);
}

/* exporter-vmap-relock */
static int tsc_vmap_relock_body(struct tsc_blocker *bl)
{
#ifdef TSC_HAVE_VMAP_UNLOCKED
	struct iosys_map map;

	/* The core locks the resv, then calls ops->vmap. */
	if (!dma_buf_vmap_unlocked(bl->b->dmabuf, &map))
		dma_buf_vunmap_unlocked(bl->b->dmabuf, &map);
#endif
	return -EPROTO;
}

int tsc_exporter_vmap_relock(void)
{
	return tsc_run_blocker("exporter-vmap-relock", "tsc-vmap-relock",
			       &tsc_relock_vmap_dmabuf_ops,
			       tsc_vmap_relock_body);
}

/* importer-attach-locked */
static int tsc_attach_locked_body(struct tsc_blocker *bl)
{
	struct dma_resv *resv = bl->b->dmabuf->resv;
	struct dma_buf_attachment *att;

	dma_resv_lock(resv, NULL);
	pr_info("%s: importer holds resv %px and calls dma_buf_attach, which locks it again\n",
		bl->name, resv);
	complete(&bl->b->about_to_block);
	att = dma_buf_attach(bl->b->dmabuf, tsc_dev);
	dma_resv_unlock(resv);
	if (!IS_ERR(att))
		dma_buf_detach(bl->b->dmabuf, att);
	return -EPROTO;
}

int tsc_importer_attach_locked(void)
{
	return tsc_run_blocker("importer-attach-locked", "tsc-attach-lckd",
			       &tsc_static_dmabuf_ops, tsc_attach_locked_body);
}

/* importer-unlocked-api-locked */
static int tsc_unlocked_api_locked_body(struct tsc_blocker *bl)
{
	struct dma_resv *resv = bl->b->dmabuf->resv;
	struct dma_buf_attachment *att;

	att = dma_buf_attach(bl->b->dmabuf, tsc_dev);
	if (IS_ERR(att))
		return PTR_ERR(att);

	dma_resv_lock(resv, NULL);
	pr_info("%s: importer holds resv %px and calls dma_buf_map_attachment_unlocked, which locks it again\n",
		bl->name, resv);
	complete(&bl->b->about_to_block);
#ifdef TSC_HAVE_MAP_UNLOCKED
	{
		struct sg_table *sgt;

		sgt = dma_buf_map_attachment_unlocked(att, DMA_BIDIRECTIONAL);
		dma_resv_unlock(resv);
		if (!IS_ERR(sgt))
			dma_buf_unmap_attachment_unlocked(att, sgt,
							  DMA_BIDIRECTIONAL);
	}
#else
	dma_resv_unlock(resv);
#endif
	dma_buf_detach(bl->b->dmabuf, att);
	return -EPROTO;
}

int tsc_importer_unlocked_api_locked(void)
{
	return tsc_run_blocker("importer-unlocked-api-locked",
			       "tsc-unlkd-lckd", &tsc_static_dmabuf_ops,
			       tsc_unlocked_api_locked_body);
}

/* ---- importer calls without the lock they require ---- */

int tsc_importer_map_unlocked(void)
{
	const char *name = "importer-map-unlocked";
	struct dma_buf_attachment *att;
	struct sg_table *sgt;
	struct tsc_buf *b;

#if TSC_UNIVERSAL_CONVENTION
	/* 6.2+: map/unmap require the lock for every attachment. */
	b = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);
	att = dma_buf_attach(b->dmabuf, tsc_dev);
#else
	/*
	 * Pre-6.2 only asserts the lock when the attachment or the exporter is
	 * dynamic; a static/static map without it was legal. Use a dynamic
	 * pair so the call breaks the rule of this kernel too.
	 */
	b = tsc_buf_create(&tsc_dynamic_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);
	att = tsc_attach_dynamic(b);
#endif
	if (IS_ERR(att)) {
		tsc_buf_put(b);
		return PTR_ERR(att);
	}

	/* The bug: the locked variants, called without dmabuf->resv. */
	sgt = dma_buf_map_attachment(att, DMA_BIDIRECTIONAL);
	if (!IS_ERR(sgt))
		dma_buf_unmap_attachment(att, sgt, DMA_BIDIRECTIONAL);
	pr_info("%s: dma_buf_map_attachment/unmap on resv %px without the lock: %ld (%s attachment)\n",
		name, b->dmabuf->resv, IS_ERR(sgt) ? PTR_ERR(sgt) : 0L,
		TSC_UNIVERSAL_CONVENTION ? "static" : "dynamic");

	dma_buf_detach(b->dmabuf, att);
	tsc_buf_put(b);
	return IS_ERR(sgt) ? PTR_ERR(sgt) : 0;
}

int tsc_importer_vmap_unlocked(void)
{
#ifdef TSC_HAVE_VMAP_UNLOCKED
	const char *name = "importer-vmap-unlocked";
	struct iosys_map map;
	struct tsc_buf *b;
	int ret;

	b = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);

	/* The bug: dma_buf_vmap/vunmap require dmabuf->resv held (6.2+). */
	ret = dma_buf_vmap(b->dmabuf, &map);
	if (!ret)
		dma_buf_vunmap(b->dmabuf, &map);
	pr_info("%s: dma_buf_vmap/vunmap on resv %px without the lock: %d\n",
		name, b->dmabuf->resv, ret);

	tsc_buf_put(b);
	return ret;
#else
	return -EOPNOTSUPP;
#endif
}

int tsc_importer_pin_unlocked(void)
{
	const char *name = "importer-pin-unlocked";
	struct dma_buf_attachment *att;
	struct tsc_buf *b;
	int ret;

	b = tsc_buf_create(&tsc_dynamic_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);
	att = tsc_attach_dynamic(b);
	if (IS_ERR(att)) {
		tsc_buf_put(b);
		return PTR_ERR(att);
	}

	/* The bug: dma_buf_pin/unpin require dmabuf->resv held. */
	ret = dma_buf_pin(att);
	if (!ret)
		dma_buf_unpin(att);
	pr_info("%s: dma_buf_pin/unpin on resv %px without the lock: %d\n",
		name, b->dmabuf->resv, ret);

	dma_buf_detach(b->dmabuf, att);
	tsc_buf_put(b);
	return ret;
}

/* ---- lock order and ww transaction misuse ---- */

int tsc_abba_no_ctx(void)
{
	const char *name = "abba-no-ctx";
	struct tsc_buf *a, *b;

	a = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(a))
		return PTR_ERR(a);
	b = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(b)) {
		tsc_buf_put(a);
		return PTR_ERR(b);
	}

	/*
	 * Two reservation locks nested without an acquire context get no
	 * deadlock avoidance. Taking them in both orders is a real ABBA
	 * deadlock once two tasks do it concurrently; done one after the other
	 * here, it completes, but the order graph has the cycle.
	 */
	dma_resv_lock(a->dmabuf->resv, NULL);
	dma_resv_lock(b->dmabuf->resv, NULL);
	dma_resv_unlock(b->dmabuf->resv);
	dma_resv_unlock(a->dmabuf->resv);

	dma_resv_lock(b->dmabuf->resv, NULL);
	dma_resv_lock(a->dmabuf->resv, NULL);
	dma_resv_unlock(a->dmabuf->resv);
	dma_resv_unlock(b->dmabuf->resv);

	pr_info("%s: locked A=%px then B=%px, later B then A, all with ctx NULL\n",
		name, a->dmabuf->resv, b->dmabuf->resv);

	tsc_buf_put(b);
	tsc_buf_put(a);
	return 0;
}

/*
 * ww-no-backoff. reservation_ww_class is a wait-die class: a transaction
 * that already holds a lock and asks for one held by an older transaction
 * gets -EDEADLK at once. The older one is a helper thread; the writer is the
 * younger, buggy one.
 */
struct tsc_wwnb {
	struct dma_resv *x, *y;
	struct completion old_has_x;
	struct completion young_did_bug;
	struct completion old_done;
	int old_ret_x, old_ret_y;
};

static int tsc_wwnb_old_fn(void *data)
{
	struct tsc_wwnb *s = data;
	struct ww_acquire_ctx ctx;

	/* Initialised before the writer's context, so this one is older. */
	ww_acquire_init(&ctx, &reservation_ww_class);
	s->old_ret_x = dma_resv_lock(s->x, &ctx);
	complete(&s->old_has_x);

	wait_for_completion_timeout(&s->young_did_bug, TSC_WAIT);

	/*
	 * Opposite order: Y is still held by the younger transaction, which
	 * did not back off. Being older, this waits instead of dying, until
	 * the younger one finally unlocks.
	 */
	s->old_ret_y = dma_resv_lock(s->y, &ctx);
	ww_acquire_done(&ctx);

	if (!s->old_ret_y)
		dma_resv_unlock(s->y);
	if (!s->old_ret_x)
		dma_resv_unlock(s->x);
	ww_acquire_fini(&ctx);

	complete(&s->old_done);
	return 0;
}

int tsc_ww_no_backoff(void)
{
	const char *name = "ww-no-backoff";
	struct tsc_buf *bx, *by, *bz;
	struct ww_acquire_ctx ctx;
	struct task_struct *t;
	struct tsc_wwnb *s;
	int ry, rx, rz = -EINVAL;
	int ret = 0;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	init_completion(&s->old_has_x);
	init_completion(&s->young_did_bug);
	init_completion(&s->old_done);

	bx = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	by = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	bz = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(bx) || IS_ERR(by) || IS_ERR(bz)) {
		ret = -ENOMEM;
		goto out_put;
	}
	s->x = bx->dmabuf->resv;
	s->y = by->dmabuf->resv;

	t = kthread_run(tsc_wwnb_old_fn, s, "tsc-ww-old");
	if (IS_ERR(t)) {
		ret = PTR_ERR(t);
		goto out_put;
	}
	if (!wait_for_completion_timeout(&s->old_has_x, TSC_WAIT)) {
		/* The helper may still touch s and the buffers: leak them. */
		pr_info("%s: older transaction never locked X\n", name);
		return -ETIMEDOUT;
	}

	ww_acquire_init(&ctx, &reservation_ww_class);
	ry = dma_resv_lock(s->y, &ctx);
	rx = dma_resv_lock(s->x, &ctx);
	if (rx == -EDEADLK) {
		/*
		 * The bug: on -EDEADLK every lock of this context must be
		 * dropped and the contended one taken with dma_resv_lock_slow.
		 * Instead Y stays held and another object is locked with the
		 * same context.
		 */
		rz = dma_resv_lock(bz->dmabuf->resv, &ctx);
		complete(&s->young_did_bug);
		/* Let the older transaction queue on Y: real contention. */
		msleep(100);
		if (!rz)
			dma_resv_unlock(bz->dmabuf->resv);
	} else {
		complete(&s->young_did_bug);
		if (!rx)
			dma_resv_unlock(s->x);
	}
	if (!ry)
		dma_resv_unlock(s->y);
	ww_acquire_fini(&ctx);

	pr_info("%s: young ctx: lock Y=%px -> %d, lock X=%px (held by older ctx) -> %d%s, then lock Z=%px without backoff -> %d\n",
		name, s->y, ry, s->x, rx,
		rx == -EDEADLK ? " (-EDEADLK)" : " (expected -EDEADLK!)",
		bz->dmabuf->resv, rz);

	if (!wait_for_completion_timeout(&s->old_done, TSC_WAIT)) {
		pr_info("%s: older transaction did not finish\n", name);
		return -ETIMEDOUT;
	}
	pr_info("%s: old ctx: lock X -> %d, lock Y (waited for young) -> %d\n",
		name, s->old_ret_x, s->old_ret_y);
	if (rx != -EDEADLK)
		ret = -EPROTO;

out_put:
	if (!IS_ERR(bz))
		tsc_buf_put(bz);
	if (!IS_ERR(by))
		tsc_buf_put(by);
	if (!IS_ERR(bx))
		tsc_buf_put(bx);
	kfree(s);
	return ret;
}

/* ---- fence-wait-under-resv ---- */

int tsc_fence_wait_under_resv(void)
{
	const char *name = "fence-wait-under-resv";
	struct tsc_fence *f;
	struct tsc_buf *b;
	long ret;

	b = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(b))
		return PTR_ERR(b);
	f = tsc_fence_create();
	if (!f) {
		tsc_buf_put(b);
		return -ENOMEM;
	}

	/*
	 * The bug ("taking these locks uninterruptible should ring a warning
	 * bell"): an uninterruptible reservation lock held across a fence
	 * wait. The fence is signalled by a worker so the wait does end.
	 */
	dma_resv_lock(b->dmabuf->resv, NULL);
	tsc_fence_signal_in(f, 100);
	ret = dma_fence_wait(&f->base, false);
	dma_resv_unlock(b->dmabuf->resv);

	pr_info("%s: dma_fence_wait(intr=false) under resv %px: %ld\n",
		name, b->dmabuf->resv, ret);
	tsc_fence_done(f);
	tsc_buf_put(b);
	return ret < 0 ? (int)ret : 0;
}

/* ---- return-to-user-holding ---- */

static DEFINE_MUTEX(tsc_rtu_mutex);
static struct tsc_buf *tsc_rtu_buf;

/*
 * pairs: un-nested lock/unlock pairs taken on the buffer first, in the same
 * thread. Past the tracer's budget of lone call sites (64) none of them
 * mattered, so the leaked lock is kept back without its call site: the
 * finding comes without its acquisition stack (docs/probes.md).
 */
static int tsc_rtu_hold(const char *name, int pairs)
{
	struct tsc_buf *b;
	int ret = 0;
	int i;

	mutex_lock(&tsc_rtu_mutex);
	if (tsc_rtu_buf) {
		ret = -EBUSY;
		goto out;
	}
	b = tsc_buf_create(&tsc_static_dmabuf_ops, name);
	if (IS_ERR(b)) {
		ret = PTR_ERR(b);
		goto out;
	}
	for (i = 0; i < pairs; i++) {
		dma_resv_lock(b->dmabuf->resv, NULL);
		dma_resv_unlock(b->dmabuf->resv);
	}
	/*
	 * The bug: the write returns to user space with the reservation lock
	 * still held. return-to-user-holding-release drops it, so the guest
	 * does not leak it forever.
	 */
	dma_resv_lock(b->dmabuf->resv, NULL);
	tsc_rtu_buf = b;
	pr_info("%s: returning to user space holding resv %px\n",
		name, b->dmabuf->resv);
out:
	mutex_unlock(&tsc_rtu_mutex);
	return ret;
}

int tsc_return_to_user_holding(void)
{
	return tsc_rtu_hold("return-to-user-holding", 0);
}

int tsc_return_to_user_holding_after_pairs(void)
{
	return tsc_rtu_hold("return-to-user-holding-after-pairs", 100);
}

static void tsc_rtu_release_locked(void)
{
	struct tsc_buf *b = tsc_rtu_buf;

	/*
	 * Possibly a different task than the locker; fine for a mutex on
	 * kernels without CONFIG_DEBUG_MUTEXES, which the lab kernels are.
	 */
	dma_resv_unlock(b->dmabuf->resv);
	tsc_rtu_buf = NULL;
	pr_info("return-to-user-holding: released resv %px\n", b->dmabuf->resv);
	tsc_buf_put(b);
}

int tsc_return_to_user_holding_release(void)
{
	mutex_lock(&tsc_rtu_mutex);
	/* Not an error when nothing is held: the lab may release twice. */
	if (tsc_rtu_buf)
		tsc_rtu_release_locked();
	else
		pr_info("return-to-user-holding: nothing held\n");
	mutex_unlock(&tsc_rtu_mutex);
	return 0;
}

void tsc_return_to_user_holding_cleanup(void)
{
	mutex_lock(&tsc_rtu_mutex);
	if (tsc_rtu_buf)
		tsc_rtu_release_locked();
	mutex_unlock(&tsc_rtu_mutex);
}

/* ---- gem-pin-relock ---- */

/*
 * panfrost/lima after the 2024 move of the lock into drm_gem_pin() (6.10;
 * on 7.3 drm_gem_map_attach locks around obj->funcs->pin itself): the PRIME
 * attach callback takes the object's reservation lock and calls the driver's
 * GEM pin, which still locked it too (drm_gem_shmem_pin). The attach callback
 * is invoked unlocked, so this is not the core's lock: the GEM helper's, taken
 * again by the driver. The three functions stand for drm_gem_map_attach,
 * drm_gem_pin and panfrost_gem_pin; noinline so each is a frame.
 */
static noinline int tsc_panfrost_gem_pin(struct dma_buf *dmabuf)
{
	struct tsc_buf *b = dmabuf->priv;
	int ret;

	complete(&b->about_to_block);
	/*
	 * drm_gem_shmem_pin() before the fix: dma_resv_lock_interruptible.
	 * Not a tail call, so this function is the lock's caller in the stack.
	 */
	ret = dma_resv_lock_interruptible(dmabuf->resv, NULL);
	if (!ret) {
		atomic_inc(&b->pins);
		dma_resv_unlock(dmabuf->resv);
	}
	return ret;
}

static noinline int tsc_drm_gem_pin(struct dma_buf *dmabuf)
{
	int ret;

	dma_resv_lock(dmabuf->resv, NULL);
	ret = tsc_panfrost_gem_pin(dmabuf);
	dma_resv_unlock(dmabuf->resv);
	return ret;
}

static int tsc_gem_map_attach(struct dma_buf *dmabuf,
			      struct dma_buf_attachment *attach)
{
	pr_info("%s: PRIME attach pins the GEM object: the GEM helper locks resv %px, the driver's pin locks it again\n",
		dmabuf->exp_name, dmabuf->resv);
	return tsc_drm_gem_pin(dmabuf);
}

const struct dma_buf_ops tsc_gem_prime_dmabuf_ops = {
	.attach = tsc_gem_map_attach,
	.detach = tsc_exp_detach,
	.map_dma_buf = tsc_exp_map,
	.unmap_dma_buf = tsc_exp_unmap,
	.release = tsc_exp_release,
	.vmap = tsc_exp_vmap,
	.vunmap = tsc_exp_vunmap,
};

static int tsc_gem_pin_relock_body(struct tsc_blocker *bl)
{
	struct dma_buf_attachment *att;

	att = dma_buf_attach(bl->b->dmabuf, tsc_dev);
	if (!IS_ERR(att))
		dma_buf_detach(bl->b->dmabuf, att);
	return -EPROTO;
}

int tsc_gem_pin_relock(void)
{
	return tsc_run_blocker("gem-pin-relock", "tsc-gem-pin",
			       &tsc_gem_prime_dmabuf_ops,
			       tsc_gem_pin_relock_body);
}

/* ---- debugfs-read-fault-under-resv ---- */

/*
 * amdgpu: a debugfs read dumped a BO while holding its reservation lock and
 * copied to user space under it; the user page faults, and the fault takes
 * mmap_lock: reservation -> mmap_lock, the reverse of the order
 * dma_resv_lockdep() primes (mmap_lock -> reservation, e.g. a page fault in a
 * GEM mmap that locks the BO). Lockdep's might_fault() flags it on every call;
 * without lockdep the fault takes mmap_lock with a trylock first, and only a
 * contended fault blocks on it. The contention is made here: a helper holds
 * the reader's mmap_lock for writing while the reader copies, as a concurrent
 * mmap()/munmap() of the same process would. The reader's buffer must be
 * fresh anonymous memory (no anon_vma yet), so the fault cannot be handled
 * under the per-VMA lock and falls back to mmap_lock.
 */
struct tsc_mmap_holder {
	struct mm_struct *mm;
	struct completion held;
	struct completion done;
};

static int tsc_mmap_holder_fn(void *data)
{
	struct tsc_mmap_holder *h = data;

	mmap_write_lock(h->mm);
	complete(&h->held);
	msleep(200);
	mmap_write_unlock(h->mm);
	complete(&h->done);
	return 0;
}

static DEFINE_MUTEX(tsc_dbg_mutex);

ssize_t tsc_debugfs_read_fault_under_resv(char __user *ubuf, size_t count)
{
	static const char dump[] = "bo 0: vram 4096 bytes, 0 fences\n";
	struct tsc_mmap_holder h;
	struct task_struct *t;
	struct tsc_buf *b;
	size_t n = min(count, sizeof(dump) - 1);
	unsigned long left;

	mutex_lock(&tsc_dbg_mutex);
	b = tsc_buf_create(&tsc_static_dmabuf_ops, "debugfs-read-fault-under-resv");
	if (IS_ERR(b)) {
		mutex_unlock(&tsc_dbg_mutex);
		return PTR_ERR(b);
	}
	h.mm = current->mm;
	mmgrab(h.mm);
	init_completion(&h.held);
	init_completion(&h.done);

	dma_resv_lock(b->dmabuf->resv, NULL);
	t = kthread_run(tsc_mmap_holder_fn, &h, "tsc-mmap-holder");
	if (!IS_ERR(t))
		wait_for_completion(&h.held);
	left = copy_to_user(ubuf, dump, n);
	dma_resv_unlock(b->dmabuf->resv);
	if (!IS_ERR(t))
		wait_for_completion(&h.done);
	mmdrop(h.mm);

	pr_info("debugfs-read-fault-under-resv: copy_to_user under resv %px: %lu of %zu bytes left\n",
		b->dmabuf->resv, left, n);
	tsc_buf_put(b);
	mutex_unlock(&tsc_dbg_mutex);
	return left ? -EFAULT : n;
}

/* ---- importer-notify-relock ---- */

/*
 * A dynamic importer's notifier (move_notify; invalidate_mappings from 7.1)
 * takes the buffer's reservation lock, which the exporter holds when it
 * notifies (dma_buf_move_notify asserts it). Found in importers that reuse
 * their own "unmap" path, which locks, from the notifier.
 */
static void tsc_relock_importer_notify(struct dma_buf_attachment *attach)
{
	struct tsc_buf *b = attach->dmabuf->priv;

	pr_info("%s: importer notifier re-locks resv %px, which the exporter holds\n",
		attach->dmabuf->exp_name, attach->dmabuf->resv);
	complete(&b->about_to_block);
	dma_resv_lock(attach->dmabuf->resv, NULL);
	dma_resv_unlock(attach->dmabuf->resv);
}

const struct dma_buf_attach_ops tsc_relock_importer_attach_ops = {
	.allow_peer2peer = false,
#ifdef TSC_HAVE_INVALIDATE_MAPPINGS
	.invalidate_mappings = tsc_relock_importer_notify,
#else
	.move_notify = tsc_relock_importer_notify,
#endif
};

static int tsc_notify_relock_body(struct tsc_blocker *bl)
{
	struct dma_buf *dmabuf = bl->b->dmabuf;
	struct dma_buf_attachment *att;

	att = dma_buf_dynamic_attach(dmabuf, tsc_dev,
				     &tsc_relock_importer_attach_ops, NULL);
	if (IS_ERR(att))
		return PTR_ERR(att);
	/* The exporter moves the buffer: notify importers under the lock. */
	dma_resv_lock(dmabuf->resv, NULL);
#ifdef TSC_HAVE_INVALIDATE_MAPPINGS
	dma_buf_invalidate_mappings(dmabuf);
#else
	dma_buf_move_notify(dmabuf);
#endif
	dma_resv_unlock(dmabuf->resv);
	dma_buf_detach(dmabuf, att);
	return -EPROTO;
}

int tsc_importer_notify_relock(void)
{
	return tsc_run_blocker("importer-notify-relock", "tsc-notify-rlck",
			       &tsc_dynamic_dmabuf_ops, tsc_notify_relock_body);
}
