// SPDX-License-Identifier: GPL-2.0
/*
 * A tiny dma-buf exporter (page-backed buffers) plus the importer callbacks
 * used by the scenarios.
 *
 * The buffers are real enough for the core to be happy (an sg_table that is
 * DMA-mapped for the importer device, a vmap of the pages), but small: the
 * point is the locking traffic, not the memory.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-mapping.h>
#include <linux/highmem.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include <linux/dma-fence.h>
#include <linux/workqueue.h>

#include "tsc_common.h"

#define TSC_NPAGES 4

int tsc_exp_attach(struct dma_buf *dmabuf, struct dma_buf_attachment *attach)
{
	return 0;
}

void tsc_exp_detach(struct dma_buf *dmabuf, struct dma_buf_attachment *attach)
{
}

int tsc_exp_pin(struct dma_buf_attachment *attach)
{
	struct tsc_buf *b = attach->dmabuf->priv;

	/* Pages are never moved, so pinning is only bookkeeping. */
	atomic_inc(&b->pins);
	return 0;
}

void tsc_exp_unpin(struct dma_buf_attachment *attach)
{
	struct tsc_buf *b = attach->dmabuf->priv;

	atomic_dec(&b->pins);
}

struct sg_table *tsc_exp_map(struct dma_buf_attachment *attach,
			     enum dma_data_direction dir)
{
	struct tsc_buf *b = attach->dmabuf->priv;
	struct sg_table *sgt;
	int ret;

	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt)
		return ERR_PTR(-ENOMEM);

	ret = sg_alloc_table_from_pages(sgt, b->pages, b->npages, 0,
					(size_t)b->npages << PAGE_SHIFT,
					GFP_KERNEL);
	if (ret)
		goto err_free;

	ret = dma_map_sgtable(attach->dev, sgt, dir, 0);
	if (ret)
		goto err_table;

	return sgt;

err_table:
	sg_free_table(sgt);
err_free:
	kfree(sgt);
	return ERR_PTR(ret);
}

void tsc_exp_unmap(struct dma_buf_attachment *attach, struct sg_table *sgt,
		   enum dma_data_direction dir)
{
	dma_unmap_sgtable(attach->dev, sgt, dir, 0);
	sg_free_table(sgt);
	kfree(sgt);
}

int tsc_exp_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct tsc_buf *b = dmabuf->priv;
	void *vaddr;

	vaddr = vmap(b->pages, b->npages, VM_MAP, PAGE_KERNEL);
	if (!vaddr)
		return -ENOMEM;
	iosys_map_set_vaddr(map, vaddr);
	return 0;
}

void tsc_exp_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	vunmap(map->vaddr);
}

int tsc_exp_begin_cpu_access(struct dma_buf *dmabuf,
			     enum dma_data_direction dir)
{
	return 0;
}

int tsc_exp_end_cpu_access(struct dma_buf *dmabuf, enum dma_data_direction dir)
{
	return 0;
}

/*
 * begin/end_cpu_access are invoked without the reservation lock, so an
 * exporter may take it there (amdgpu reserves its BO in begin_cpu_access).
 * Doing the same here gives the clean scenarios a legal exporter-side lock
 * that a correct tracer must not report.
 */
static int tsc_dyn_begin_cpu_access(struct dma_buf *dmabuf,
				    enum dma_data_direction dir)
{
	int ret;

	ret = dma_resv_lock_interruptible(dmabuf->resv, NULL);
	if (ret)
		return ret;
	dma_resv_unlock(dmabuf->resv);
	return 0;
}

static int tsc_dyn_end_cpu_access(struct dma_buf *dmabuf,
				  enum dma_data_direction dir)
{
	int ret;

	ret = dma_resv_lock_interruptible(dmabuf->resv, NULL);
	if (ret)
		return ret;
	dma_resv_unlock(dmabuf->resv);
	return 0;
}

void tsc_exp_release(struct dma_buf *dmabuf)
{
	struct tsc_buf *b = dmabuf->priv;
	unsigned int i;

	for (i = 0; i < b->npages; i++)
		__free_page(b->pages[i]);
	kfree(b->pages);
	kfree(b);
}

/* A static exporter: no pin, so the core treats its buffers as non-dynamic. */
const struct dma_buf_ops tsc_static_dmabuf_ops = {
	.attach = tsc_exp_attach,
	.detach = tsc_exp_detach,
	.map_dma_buf = tsc_exp_map,
	.unmap_dma_buf = tsc_exp_unmap,
	.release = tsc_exp_release,
	.begin_cpu_access = tsc_exp_begin_cpu_access,
	.end_cpu_access = tsc_exp_end_cpu_access,
	.vmap = tsc_exp_vmap,
	.vunmap = tsc_exp_vunmap,
};

/* A dynamic exporter: pin/unpin make dma_buf_is_dynamic() true. */
const struct dma_buf_ops tsc_dynamic_dmabuf_ops = {
	.attach = tsc_exp_attach,
	.detach = tsc_exp_detach,
	.pin = tsc_exp_pin,
	.unpin = tsc_exp_unpin,
	.map_dma_buf = tsc_exp_map,
	.unmap_dma_buf = tsc_exp_unmap,
	.release = tsc_exp_release,
	.begin_cpu_access = tsc_dyn_begin_cpu_access,
	.end_cpu_access = tsc_dyn_end_cpu_access,
	.vmap = tsc_exp_vmap,
	.vunmap = tsc_exp_vunmap,
};

struct tsc_buf *tsc_buf_create(const struct dma_buf_ops *ops,
			       const char *exp_name)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	struct dma_buf *dmabuf;
	struct tsc_buf *b;
	unsigned int i;

	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return ERR_PTR(-ENOMEM);
	atomic_set(&b->pins, 0);
	init_completion(&b->about_to_block);

	b->pages = kcalloc(TSC_NPAGES, sizeof(*b->pages), GFP_KERNEL);
	if (!b->pages)
		goto err_free;
	for (i = 0; i < TSC_NPAGES; i++) {
		b->pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!b->pages[i])
			goto err_pages;
		b->npages++;
	}

	/* exp_name lets the tracer's reports name the scenario. */
	exp_info.exp_name = exp_name;
	exp_info.ops = ops;
	exp_info.size = (size_t)b->npages << PAGE_SHIFT;
	exp_info.flags = O_RDWR;
	exp_info.priv = b;

	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf)) {
		pr_info("%s: dma_buf_export failed: %ld\n", exp_name,
			PTR_ERR(dmabuf));
		for (i = 0; i < b->npages; i++)
			__free_page(b->pages[i]);
		kfree(b->pages);
		kfree(b);
		return ERR_CAST(dmabuf);
	}
	b->dmabuf = dmabuf;
	return b;

err_pages:
	for (i = 0; i < b->npages; i++)
		__free_page(b->pages[i]);
	kfree(b->pages);
err_free:
	kfree(b);
	return ERR_PTR(-ENOMEM);
}

void tsc_buf_put(struct tsc_buf *b)
{
	dma_buf_put(b->dmabuf);
}

/*
 * Importer side. The buffers never move, so there is nothing to invalidate;
 * the callback exists because dynamic attachments require it up to 7.0.
 */
static void tsc_importer_invalidate(struct dma_buf_attachment *attach)
{
}

const struct dma_buf_attach_ops tsc_importer_attach_ops = {
	.allow_peer2peer = false,
#ifdef TSC_HAVE_INVALIDATE_MAPPINGS
	.invalidate_mappings = tsc_importer_invalidate,
#else
	.move_notify = tsc_importer_invalidate,
#endif
};

struct dma_buf_attachment *tsc_attach_dynamic(struct tsc_buf *b)
{
	return dma_buf_dynamic_attach(b->dmabuf, tsc_dev,
				      &tsc_importer_attach_ops, NULL);
}

/*
 * Fences of the scenarios: unsignalled at creation, signalled by a worker
 * after a delay, so waits under a lock really wait and still end.
 */
static const char *tsc_fence_driver_name(struct dma_fence *f)
{
	return KBUILD_MODNAME;
}

static const char *tsc_fence_timeline_name(struct dma_fence *f)
{
	return "scenario";
}

static const struct dma_fence_ops tsc_fence_ops = {
	.get_driver_name = tsc_fence_driver_name,
	.get_timeline_name = tsc_fence_timeline_name,
};

static void tsc_fence_signal_work(struct work_struct *work)
{
	struct tsc_fence *f = container_of(to_delayed_work(work),
					   struct tsc_fence, signal_work);

	dma_fence_signal(&f->base);
}

struct tsc_fence *tsc_fence_create(void)
{
	struct tsc_fence *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (!f)
		return NULL;
	spin_lock_init(&f->lock);
	dma_fence_init(&f->base, &tsc_fence_ops, &f->lock,
		       dma_fence_context_alloc(1), 1);
	INIT_DELAYED_WORK(&f->signal_work, tsc_fence_signal_work);
	return f;
}

void tsc_fence_signal_in(struct tsc_fence *f, unsigned int ms)
{
	schedule_delayed_work(&f->signal_work, msecs_to_jiffies(ms));
}

void tsc_fence_done(struct tsc_fence *f)
{
	/* The worker must be done with the fence before it is freed. */
	flush_delayed_work(&f->signal_work);
	if (!dma_fence_is_signaled(&f->base))
		dma_fence_signal(&f->base);
	dma_fence_put(&f->base);
}
