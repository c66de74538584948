// SPDX-License-Identifier: GPL-2.0
/*
 * tracer_bench: timed reservation-lock loops, to measure the tracer's
 * overhead per lock (cargo xtask lab --bench, docs/overhead.md).
 *
 * /sys/kernel/debug/tracer_bench/run: writing "N" runs, in the writer's
 * context, three loops of N iterations each, timed with ktime_get_ns():
 *
 *   resv_pair       dma_resv_lock(obj, NULL) + dma_resv_unlock on one
 *                   dma_resv of the module's own
 *   ww_txn3         a ww transaction over three dma_resv objects
 *                   (acquire_init, lock x3, acquire_done, unlock x3,
 *                   acquire_fini)
 *   importer_cycle  an importer cycle on the module's own exported dma-buf
 *                   (attach, lock, map, unmap, unlock, detach)
 *   ww_txn64        one ww transaction over 64 dma_resv objects, as a big
 *                   execbuf locks its buffer objects (acquire_init, lock x64,
 *                   acquire_done, unlock x64, acquire_fini); one operation is
 *                   the whole transaction
 *
 * /sys/kernel/debug/tracer_bench/result: one line per loop of the last run,
 * "<loop> ns_per_op=<integer> iters=<N> total_ns=<integer>".
 *
 * /sys/kernel/debug/tracer_bench/loops: which loops "run" runs, a bit mask in
 * the order above (default 15, all; 1 = resv_pair alone, for profiling the
 * tracer's path for an un-nested lock/unlock pair).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/platform_device.h>
#include <linux/scatterlist.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#define TB_NRESV 64
/* ww_txn3 locks the first three. */
#define TB_TXN3 3
#define TB_NPAGES 1
/* Give the scheduler a chance every so many iterations (no lock held). */
#define TB_RESCHED_EVERY 256

static struct platform_device *tb_pdev;
static struct device *tb_dev;
static struct dentry *tb_dir;
static struct dma_resv tb_resv[TB_NRESV];
static struct dma_buf *tb_dmabuf;
static struct page *tb_pages[TB_NPAGES];

/* Serialises runs and guards the result text. */
static DEFINE_MUTEX(tb_lock);
static char tb_result[256];
static u32 tb_loop_mask = 15;
static size_t tb_result_len;

/* ---- a minimal page-backed exporter ---- */

static int tb_exp_attach(struct dma_buf *dmabuf,
			 struct dma_buf_attachment *attach)
{
	return 0;
}

static void tb_exp_detach(struct dma_buf *dmabuf,
			  struct dma_buf_attachment *attach)
{
}

static struct sg_table *tb_exp_map(struct dma_buf_attachment *attach,
				   enum dma_data_direction dir)
{
	struct sg_table *sgt;
	int ret;

	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table_from_pages(sgt, tb_pages, TB_NPAGES, 0,
					(size_t)TB_NPAGES << PAGE_SHIFT,
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

static void tb_exp_unmap(struct dma_buf_attachment *attach,
			 struct sg_table *sgt, enum dma_data_direction dir)
{
	dma_unmap_sgtable(attach->dev, sgt, dir, 0);
	sg_free_table(sgt);
	kfree(sgt);
}

static void tb_exp_release(struct dma_buf *dmabuf)
{
}

/* The tracer finds exporters by the *_dmabuf_ops suffix. */
static const struct dma_buf_ops tb_static_dmabuf_ops = {
	.attach = tb_exp_attach,
	.detach = tb_exp_detach,
	.map_dma_buf = tb_exp_map,
	.unmap_dma_buf = tb_exp_unmap,
	.release = tb_exp_release,
};

/* ---- the loops ---- */

static int tb_resv_pair(unsigned int n)
{
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = dma_resv_lock(&tb_resv[0], NULL);
		if (ret)
			return ret;
		dma_resv_unlock(&tb_resv[0]);
		if (i % TB_RESCHED_EVERY == 0)
			cond_resched();
	}
	return 0;
}

/*
 * n ww transactions over the first nobj objects: acquire_init, lock each
 * with the context, acquire_done, unlock in reverse, acquire_fini.
 */
static int tb_ww_txn(unsigned int n, unsigned int nobj, unsigned int resched_every)
{
	struct ww_acquire_ctx ctx;
	unsigned int i, j;
	int ret = 0;

	for (i = 0; i < n; i++) {
		ww_acquire_init(&ctx, &reservation_ww_class);
		for (j = 0; j < nobj; j++) {
			/* Uncontended: -EDEADLK cannot happen, but be correct. */
			ret = dma_resv_lock(&tb_resv[j], &ctx);
			if (ret)
				break;
		}
		if (!ret)
			ww_acquire_done(&ctx);
		while (j-- > 0)
			dma_resv_unlock(&tb_resv[j]);
		ww_acquire_fini(&ctx);
		if (ret)
			return ret;
		if (i % resched_every == 0)
			cond_resched();
	}
	return 0;
}

static int tb_ww_txn3(unsigned int n)
{
	return tb_ww_txn(n, TB_TXN3, TB_RESCHED_EVERY);
}

static int tb_ww_txn64(unsigned int n)
{
	return tb_ww_txn(n, TB_NRESV, 1);
}

static int tb_importer_cycle(unsigned int n)
{
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		attach = dma_buf_attach(tb_dmabuf, tb_dev);
		if (IS_ERR(attach))
			return PTR_ERR(attach);
		ret = dma_resv_lock(tb_dmabuf->resv, NULL);
		if (ret) {
			dma_buf_detach(tb_dmabuf, attach);
			return ret;
		}
		sgt = dma_buf_map_attachment(attach, DMA_BIDIRECTIONAL);
		if (IS_ERR(sgt)) {
			dma_resv_unlock(tb_dmabuf->resv);
			dma_buf_detach(tb_dmabuf, attach);
			return PTR_ERR(sgt);
		}
		dma_buf_unmap_attachment(attach, sgt, DMA_BIDIRECTIONAL);
		dma_resv_unlock(tb_dmabuf->resv);
		dma_buf_detach(tb_dmabuf, attach);
		if (i % TB_RESCHED_EVERY == 0)
			cond_resched();
	}
	return 0;
}

struct tb_loop {
	const char *name;
	int (*run)(unsigned int n);
};

static const struct tb_loop tb_loops[] = {
	{ "resv_pair", tb_resv_pair },
	{ "ww_txn3", tb_ww_txn3 },
	{ "importer_cycle", tb_importer_cycle },
	{ "ww_txn64", tb_ww_txn64 },
};

static ssize_t tb_run_write(struct file *file, const char __user *ubuf,
			    size_t count, loff_t *ppos)
{
	char buf[sizeof(tb_result)];
	size_t len = 0;
	unsigned int n, i;
	u64 t0, dt;
	int ret;

	ret = kstrtouint_from_user(ubuf, count, 0, &n);
	if (ret)
		return ret;
	if (n == 0)
		return -EINVAL;

	mutex_lock(&tb_lock);
	for (i = 0; i < ARRAY_SIZE(tb_loops); i++) {
		if (!(tb_loop_mask & (1U << i)))
			continue;
		t0 = ktime_get_ns();
		ret = tb_loops[i].run(n);
		dt = ktime_get_ns() - t0;
		if (ret) {
			pr_info("%s: failed (%d)\n", tb_loops[i].name, ret);
			goto out;
		}
		len += scnprintf(buf + len, sizeof(buf) - len,
				 "%s ns_per_op=%llu iters=%u total_ns=%llu\n",
				 tb_loops[i].name, div_u64(dt, n), n, dt);
	}
	memcpy(tb_result, buf, len);
	tb_result_len = len;
	ret = count;
out:
	mutex_unlock(&tb_lock);
	return ret;
}

static ssize_t tb_result_read(struct file *file, char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&tb_lock);
	ret = simple_read_from_buffer(ubuf, count, ppos, tb_result,
				      tb_result_len);
	mutex_unlock(&tb_lock);
	return ret;
}

static const struct file_operations tb_run_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = tb_run_write,
};

static const struct file_operations tb_result_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = tb_result_read,
};

static void tb_free_pages(void)
{
	unsigned int i;

	for (i = 0; i < TB_NPAGES; i++) {
		if (tb_pages[i])
			__free_page(tb_pages[i]);
		tb_pages[i] = NULL;
	}
}

static int __init tb_init(void)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	unsigned int i;
	int ret;

	tb_pdev = platform_device_register_simple(KBUILD_MODNAME,
						  PLATFORM_DEVID_NONE, NULL, 0);
	if (IS_ERR(tb_pdev))
		return PTR_ERR(tb_pdev);
	tb_dev = &tb_pdev->dev;
	/* The exporter DMA-maps its sg_tables for this device. */
	ret = dma_coerce_mask_and_coherent(tb_dev, DMA_BIT_MASK(64));
	if (ret)
		goto err_dev;

	for (i = 0; i < TB_NRESV; i++)
		dma_resv_init(&tb_resv[i]);

	for (i = 0; i < TB_NPAGES; i++) {
		tb_pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!tb_pages[i]) {
			ret = -ENOMEM;
			goto err_resv;
		}
	}
	exp_info.exp_name = "tracer_bench";
	exp_info.ops = &tb_static_dmabuf_ops;
	exp_info.size = (size_t)TB_NPAGES << PAGE_SHIFT;
	exp_info.flags = O_RDWR;
	/* dma_buf_export refuses a NULL priv. */
	exp_info.priv = tb_pages;
	tb_dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(tb_dmabuf)) {
		ret = PTR_ERR(tb_dmabuf);
		pr_err("dma_buf_export failed: %d\n", ret);
		goto err_resv;
	}

	tb_dir = debugfs_create_dir(KBUILD_MODNAME, NULL);
	if (IS_ERR(tb_dir)) {
		ret = PTR_ERR(tb_dir);
		goto err_buf;
	}
	debugfs_create_file("run", 0200, tb_dir, NULL, &tb_run_fops);
	debugfs_create_file("result", 0400, tb_dir, NULL, &tb_result_fops);
	debugfs_create_u32("loops", 0600, tb_dir, &tb_loop_mask);
	pr_info("loaded\n");
	return 0;

err_buf:
	dma_buf_put(tb_dmabuf);
err_resv:
	tb_free_pages();
	for (i = 0; i < TB_NRESV; i++)
		dma_resv_fini(&tb_resv[i]);
err_dev:
	platform_device_unregister(tb_pdev);
	return ret;
}

static void __exit tb_exit(void)
{
	unsigned int i;

	debugfs_remove_recursive(tb_dir);
	/* The last reference: release runs now (no importer keeps one). */
	dma_buf_put(tb_dmabuf);
	tb_free_pages();
	for (i = 0; i < TB_NRESV; i++)
		dma_resv_fini(&tb_resv[i]);
	platform_device_unregister(tb_pdev);
	pr_info("unloaded\n");
}

module_init(tb_init);
module_exit(tb_exit);

MODULE_DESCRIPTION("timed dma-buf reservation-lock loops for the tracer lab");
MODULE_LICENSE("GPL");
/* 6.13 turned symbol namespaces into string literals. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
MODULE_IMPORT_NS("DMA_BUF");
#else
MODULE_IMPORT_NS(DMA_BUF);
#endif
