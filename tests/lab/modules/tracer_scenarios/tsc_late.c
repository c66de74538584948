// SPDX-License-Identifier: GPL-2.0
/*
 * tracer_late: a dma-buf exporter loaded after the tracer started, as a driver
 * under development is on a dev box (rmmod, modprobe, run the test). Not
 * loaded at boot: its scenarios insmod it, and unload it where they can.
 *
 * /sys/kernel/debug/tracer_late/vmap       vmap + vunmap of a buffer (clean)
 * /sys/kernel/debug/tracer_late/vmap-relock  the vmap callback relocks the
 *     resv the core holds (6.2+): a helper thread blocks forever, and the
 *     module can no longer be unloaded.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/iosys-map.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/version.h>

struct tsc_late_buf {
	void *vaddr;
	bool relock;
	struct completion about_to_block;
};

static struct sg_table *tsc_late_map(struct dma_buf_attachment *a,
				     enum dma_data_direction dir)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static void tsc_late_unmap(struct dma_buf_attachment *a, struct sg_table *sgt,
			   enum dma_data_direction dir)
{
}

static void tsc_late_release(struct dma_buf *dmabuf)
{
	struct tsc_late_buf *b = dmabuf->priv;

	kfree(b->vaddr);
	kfree(b);
}

static int tsc_late_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct tsc_late_buf *b = dmabuf->priv;

	if (b->relock) {
		pr_info("vmap callback re-locks resv %px, which the core holds\n",
			dmabuf->resv);
		complete(&b->about_to_block);
		dma_resv_lock(dmabuf->resv, NULL);
		dma_resv_unlock(dmabuf->resv);
	}
	iosys_map_set_vaddr(map, b->vaddr);
	return 0;
}

static void tsc_late_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
}

const struct dma_buf_ops tsc_late_dmabuf_ops = {
	.map_dma_buf = tsc_late_map,
	.unmap_dma_buf = tsc_late_unmap,
	.release = tsc_late_release,
	.vmap = tsc_late_vmap,
	.vunmap = tsc_late_vunmap,
};

static struct dma_buf *tsc_late_export(bool relock)
{
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct tsc_late_buf *b;
	struct dma_buf *d;

	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return ERR_PTR(-ENOMEM);
	b->vaddr = kzalloc(PAGE_SIZE, GFP_KERNEL);
	if (!b->vaddr) {
		kfree(b);
		return ERR_PTR(-ENOMEM);
	}
	b->relock = relock;
	init_completion(&b->about_to_block);
	info.ops = &tsc_late_dmabuf_ops;
	info.size = PAGE_SIZE;
	info.flags = O_RDWR;
	info.priv = b;
	info.exp_name = relock ? "late-vmap-relock" : "late-vmap";
	d = dma_buf_export(&info);
	if (IS_ERR(d)) {
		kfree(b->vaddr);
		kfree(b);
	}
	return d;
}

/* 6.2 added the _unlocked wrappers: the core takes the resv around ops->vmap. */
static int tsc_late_do_vmap(struct dma_buf *d)
{
	struct iosys_map map;
	int ret;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	ret = dma_buf_vmap_unlocked(d, &map);
	if (!ret)
		dma_buf_vunmap_unlocked(d, &map);
#else
	ret = dma_buf_vmap(d, &map);
	if (!ret)
		dma_buf_vunmap(d, &map);
#endif
	return ret;
}

static ssize_t tsc_late_vmap_write(struct file *f, const char __user *u,
				   size_t n, loff_t *pos)
{
	struct dma_buf *d = tsc_late_export(false);
	int ret;

	if (IS_ERR(d))
		return PTR_ERR(d);
	ret = tsc_late_do_vmap(d);
	pr_info("vmap of a late exporter's buffer (resv %px): %d\n", d->resv, ret);
	dma_buf_put(d);
	return ret ? ret : n;
}

static int tsc_late_relock_fn(void *data)
{
	tsc_late_do_vmap(data);
	return 0;
}

static ssize_t tsc_late_relock_write(struct file *f, const char __user *u,
				     size_t n, loff_t *pos)
{
	struct tsc_late_buf *b;
	struct task_struct *t;
	struct dma_buf *d = tsc_late_export(true);
	int i;

	if (IS_ERR(d))
		return PTR_ERR(d);
	b = d->priv;
	/* The helper never returns: it keeps the module (and the buffer). */
	__module_get(THIS_MODULE);
	t = kthread_run(tsc_late_relock_fn, d, "tsc-late-relock");
	if (IS_ERR(t)) {
		module_put(THIS_MODULE);
		dma_buf_put(d);
		return PTR_ERR(t);
	}
	get_task_struct(t);
	if (!wait_for_completion_timeout(&b->about_to_block, 5 * HZ)) {
		put_task_struct(t);
		return -ETIMEDOUT;
	}
	/*
	 * Return once the relock really blocks: the helper first spins on the
	 * owner (itself), then sleeps uninterruptibly (bounded: 3 s).
	 */
	for (i = 0; i < 150 && !(READ_ONCE(t->__state) & TASK_UNINTERRUPTIBLE); i++)
		msleep(20);
	put_task_struct(t);
	return n;
}

static const struct file_operations tsc_late_vmap_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = tsc_late_vmap_write,
};

static const struct file_operations tsc_late_relock_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = tsc_late_relock_write,
};

static struct dentry *tsc_late_dir;

static int __init tsc_late_init(void)
{
	tsc_late_dir = debugfs_create_dir(KBUILD_MODNAME, NULL);
	if (IS_ERR(tsc_late_dir))
		return PTR_ERR(tsc_late_dir);
	debugfs_create_file("vmap", 0200, tsc_late_dir, NULL, &tsc_late_vmap_fops);
	debugfs_create_file("vmap-relock", 0200, tsc_late_dir, NULL,
			    &tsc_late_relock_fops);
	pr_info("loaded\n");
	return 0;
}

static void __exit tsc_late_exit(void)
{
	debugfs_remove_recursive(tsc_late_dir);
	pr_info("unloaded\n");
}

module_init(tsc_late_init);
module_exit(tsc_late_exit);

MODULE_DESCRIPTION("a dma-buf exporter loaded after the tracer started (lab)");
MODULE_LICENSE("GPL");
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
MODULE_IMPORT_NS("DMA_BUF");
#else
MODULE_IMPORT_NS(DMA_BUF);
#endif
