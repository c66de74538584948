/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared declarations of the tracer_scenarios test module.
 *
 * Each scenario builds its own dma-bufs with a tiny in-module exporter and
 * drives them through the real dma-buf core, so the tracer observes the same
 * ww_mutex_lock/unlock calls (and call stacks) a real driver would produce.
 */
#ifndef TSC_COMMON_H
#define TSC_COMMON_H

#include <linux/completion.h>
#include <linux/device.h>
#include <linux/dma-fence.h>
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/sched.h>
#include <linux/version.h>
#include <linux/workqueue.h>

/*
 * 6.2 made the reservation-lock convention universal: map/unmap assert the
 * lock for every attachment and vmap/vunmap take the resv instead of the
 * internal dmabuf->lock mutex. Before that (Debian bookworm's 6.1) only
 * dynamic attachments had a rule and vmap had none.
 */
#define TSC_UNIVERSAL_CONVENTION \
	(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0))

/* How long a trigger waits for helper threads before giving up on them. */
#define TSC_WAIT (5 * HZ)

struct tsc_buf {
	struct dma_buf *dmabuf;
	struct page **pages;
	unsigned int npages;
	atomic_t pins;
	/*
	 * Signalled right before a deliberately self-deadlocking lock call, so
	 * the trigger can return once the relock attempt is under way.
	 */
	struct completion about_to_block;
	/* Scenario-owned state (never freed by the exporter). */
	void *priv;
};

/* The importer device all attachments are made against. */
extern struct device *tsc_dev;

/* Exporter flavours; the tracer finds exporters by the *_dmabuf_ops suffix. */
extern const struct dma_buf_ops tsc_static_dmabuf_ops;
extern const struct dma_buf_ops tsc_dynamic_dmabuf_ops;
extern const struct dma_buf_ops tsc_relock_pin_dmabuf_ops;
extern const struct dma_buf_ops tsc_relock_map_dmabuf_ops;
extern const struct dma_buf_ops tsc_relock_vmap_dmabuf_ops;
extern const struct dma_buf_ops tsc_i915_style_dmabuf_ops;

/* Importer-side callbacks for dynamic attachments. */
extern const struct dma_buf_attach_ops tsc_importer_attach_ops;

struct tsc_buf *tsc_buf_create(const struct dma_buf_ops *ops,
			       const char *exp_name);
/* Drop the creator's reference; the exporter's release frees the tsc_buf. */
void tsc_buf_put(struct tsc_buf *b);

struct dma_buf_attachment *tsc_attach_dynamic(struct tsc_buf *b);

/*
 * Plain callbacks shared by the exporter flavours (tsc_exporter.c). None of
 * them touches the reservation lock.
 */
int tsc_exp_attach(struct dma_buf *dmabuf, struct dma_buf_attachment *attach);
void tsc_exp_detach(struct dma_buf *dmabuf, struct dma_buf_attachment *attach);
int tsc_exp_pin(struct dma_buf_attachment *attach);
void tsc_exp_unpin(struct dma_buf_attachment *attach);
struct sg_table *tsc_exp_map(struct dma_buf_attachment *attach,
			     enum dma_data_direction dir);
void tsc_exp_unmap(struct dma_buf_attachment *attach, struct sg_table *sgt,
		   enum dma_data_direction dir);
void tsc_exp_release(struct dma_buf *dmabuf);
int tsc_exp_vmap(struct dma_buf *dmabuf, struct iosys_map *map);
void tsc_exp_vunmap(struct dma_buf *dmabuf, struct iosys_map *map);
int tsc_exp_begin_cpu_access(struct dma_buf *dmabuf,
			     enum dma_data_direction dir);
int tsc_exp_end_cpu_access(struct dma_buf *dmabuf, enum dma_data_direction dir);

/* A fence signalled by a worker after a delay (tsc_exporter.c). */
struct tsc_fence {
	struct dma_fence base;	/* first: dma_fence_free() kfree_rcu()s it */
	spinlock_t lock;
	struct delayed_work signal_work;
};

struct tsc_fence *tsc_fence_create(void);
void tsc_fence_signal_in(struct tsc_fence *f, unsigned int ms);
/* Waits for the worker, signals if it has not, drops the reference. */
void tsc_fence_done(struct tsc_fence *f);

/* Scenario entry points: 0 on success, negative errno on setup failure. */
int tsc_exporter_pin_relock(void);
int tsc_exporter_map_relock(void);
int tsc_exporter_vmap_relock(void);
int tsc_importer_map_unlocked(void);
int tsc_importer_vmap_unlocked(void);
int tsc_importer_pin_unlocked(void);
int tsc_importer_attach_locked(void);
int tsc_importer_unlocked_api_locked(void);
int tsc_abba_no_ctx(void);
int tsc_ww_no_backoff(void);
int tsc_fence_wait_under_resv(void);
int tsc_return_to_user_holding(void);
int tsc_return_to_user_holding_after_pairs(void);
int tsc_return_to_user_holding_release(void);
void tsc_return_to_user_holding_cleanup(void);
int tsc_fence_wait_in_repeated_txn(void);
int tsc_clean_map_in_repeated_txn(void);
int tsc_return_to_user_in_repeated_txn(void);
int tsc_return_to_user_in_repeated_txn_release(void);
void tsc_repeats_cleanup(void);

int tsc_gem_pin_relock(void);
int tsc_importer_notify_relock(void);
int tsc_ww_second_ctx_same_class(void);
int tsc_static_importer_map_of_pin_exporter(void);
int tsc_importer_put_locked(void);
int tsc_resv_lock_after_fini(void);
int tsc_clean_unlock_unseen_by_hooks(void);
/* A debugfs read (the scenario's file is read, not written). */
ssize_t tsc_debugfs_read_fault_under_resv(char __user *ubuf, size_t count);

int tsc_clean_i915_style_attach_transaction(void);
int tsc_clean_resv_txn_inside_modeset_ctx(void);
int tsc_clean_opposite_order_transactions(void);
int tsc_clean_core_wait_in_attach(void);
int tsc_clean_importer_locked_api(void);
int tsc_clean_importer_unlocked_api(void);

#endif /* TSC_COMMON_H */
