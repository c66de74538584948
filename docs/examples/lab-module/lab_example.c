// SPDX-License-Identifier: GPL-2.0
/*
 * A minimal dma-buf exporter for the tracer lab. Each "1" written to
 * /sys/kernel/debug/lab_example/export exports a one-page dma-buf, imports it
 * back the way a simple driver would (attach, map, unmap, detach) and drops it,
 * so the tracer sees one complete, correctly locked buffer lifetime.
 */
#include <linux/debugfs.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/version.h>

static struct platform_device *ex_pdev;
static struct dentry *ex_dir;

static struct sg_table *ex_map(struct dma_buf_attachment *att,
			       enum dma_data_direction dir)
{
	struct sg_table *sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	int ret;

	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table(sgt, 1, GFP_KERNEL);
	if (ret)
		goto free;
	sg_set_page(sgt->sgl, att->dmabuf->priv, PAGE_SIZE, 0);
	ret = dma_map_sgtable(att->dev, sgt, dir, 0);
	if (ret)
		goto table;
	return sgt;
table:
	sg_free_table(sgt);
free:
	kfree(sgt);
	return ERR_PTR(ret);
}

static void ex_unmap(struct dma_buf_attachment *att, struct sg_table *sgt,
		     enum dma_data_direction dir)
{
	dma_unmap_sgtable(att->dev, sgt, dir, 0);
	sg_free_table(sgt);
	kfree(sgt);
}

static void ex_release(struct dma_buf *buf)
{
	__free_page(buf->priv);
}

static const struct dma_buf_ops ex_ops = {
	.map_dma_buf = ex_map,
	.unmap_dma_buf = ex_unmap,
	.release = ex_release,
};

static ssize_t ex_export_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct dma_buf_attachment *att;
	struct sg_table *sgt;
	struct dma_buf *buf;
	struct page *page;

	page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!page)
		return -ENOMEM;
	info.ops = &ex_ops;
	info.size = PAGE_SIZE;
	info.flags = O_RDWR;
	info.priv = page;
	buf = dma_buf_export(&info);
	if (IS_ERR(buf)) {
		__free_page(page);
		return PTR_ERR(buf);
	}
	/* The importer side: the _unlocked helpers take the resv lock themselves. */
	att = dma_buf_attach(buf, &ex_pdev->dev);
	if (!IS_ERR(att)) {
		sgt = dma_buf_map_attachment_unlocked(att, DMA_BIDIRECTIONAL);
		if (!IS_ERR(sgt))
			dma_buf_unmap_attachment_unlocked(att, sgt, DMA_BIDIRECTIONAL);
		dma_buf_detach(buf, att);
	}
	dma_buf_put(buf);
	return IS_ERR(att) ? PTR_ERR(att) : count;
}

static const struct file_operations ex_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = ex_export_write,
};

static int __init ex_init(void)
{
	ex_pdev = platform_device_register_simple("lab_example", PLATFORM_DEVID_NONE, NULL, 0);
	if (IS_ERR(ex_pdev))
		return PTR_ERR(ex_pdev);
	dma_coerce_mask_and_coherent(&ex_pdev->dev, DMA_BIT_MASK(64));
	ex_dir = debugfs_create_dir("lab_example", NULL);
	debugfs_create_file("export", 0200, ex_dir, NULL, &ex_fops);
	return 0;
}

static void __exit ex_exit(void)
{
	debugfs_remove_recursive(ex_dir);
	platform_device_unregister(ex_pdev);
}

module_init(ex_init);
module_exit(ex_exit);
MODULE_DESCRIPTION("tracer lab example: a minimal dma-buf exporter");
MODULE_LICENSE("GPL");
/* The namespace argument became a string literal in 6.13. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
MODULE_IMPORT_NS("DMA_BUF");
#else
MODULE_IMPORT_NS(DMA_BUF);
#endif
