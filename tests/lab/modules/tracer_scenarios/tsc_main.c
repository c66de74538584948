// SPDX-License-Identifier: GPL-2.0
/*
 * tracer_scenarios: reproducible dma-buf reservation-lock scenarios (buggy and
 * clean) for testing the tracer inside lab guests.
 *
 * /sys/kernel/debug/tracer_scenarios/<scenario> is write-only; writing "1"
 * runs the scenario synchronously in the writer's context, so the tracer
 * attributes the lock traffic to the writing task. Scenarios that cannot
 * exist on the running kernel have no file; the reason is logged at load.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/uaccess.h>

#include "tsc_common.h"

struct tsc_scenario {
	const char *name;
	int (*run)(void);
	/* A scenario triggered by reading its file into the reader's buffer. */
	ssize_t (*read)(char __user *ubuf, size_t count);
	/* Non-NULL: the scenario cannot exist on this kernel, and why. */
	const char *absent;
};

#define TSC_PRESENT(n, fn) { .name = n, .run = fn }
#define TSC_READ(n, fn) { .name = n, .read = fn }
#define TSC_ABSENT(n, why) { .name = n, .absent = why }

static const struct tsc_scenario tsc_scenarios[] = {
	TSC_PRESENT("exporter-pin-relock", tsc_exporter_pin_relock),
#ifdef TSC_HAVE_MAP_UNLOCKED
	TSC_PRESENT("exporter-map-relock", tsc_exporter_map_relock),
#else
	TSC_ABSENT("exporter-map-relock",
		   "no dma_buf_map_attachment_unlocked (pre-6.1.53): the core never locks around map_dma_buf for a static exporter"),
#endif
#ifdef TSC_HAVE_VMAP_UNLOCKED
	TSC_PRESENT("exporter-vmap-relock", tsc_exporter_vmap_relock),
#else
	TSC_ABSENT("exporter-vmap-relock",
		   "pre-6.2: dma_buf_vmap guards ops->vmap with the internal dmabuf->lock mutex, not the resv, and there is no dma_buf_vmap_unlocked"),
#endif
	TSC_PRESENT("importer-map-unlocked", tsc_importer_map_unlocked),
#ifdef TSC_HAVE_VMAP_UNLOCKED
	TSC_PRESENT("importer-vmap-unlocked", tsc_importer_vmap_unlocked),
#else
	TSC_ABSENT("importer-vmap-unlocked",
		   "pre-6.2: dma_buf_vmap has no reservation-lock rule (it takes dmabuf->lock itself)"),
#endif
	TSC_PRESENT("importer-pin-unlocked", tsc_importer_pin_unlocked),
	TSC_PRESENT("importer-attach-locked", tsc_importer_attach_locked),
#ifdef TSC_HAVE_MAP_UNLOCKED
	TSC_PRESENT("importer-unlocked-api-locked",
		    tsc_importer_unlocked_api_locked),
#else
	TSC_ABSENT("importer-unlocked-api-locked",
		   "no dma_buf_map_attachment_unlocked on this kernel (added in 6.2, backported to 6.1.53)"),
#endif
	TSC_PRESENT("abba-no-ctx", tsc_abba_no_ctx),
	TSC_PRESENT("ww-no-backoff", tsc_ww_no_backoff),
	TSC_PRESENT("fence-wait-under-resv", tsc_fence_wait_under_resv),
	TSC_PRESENT("return-to-user-holding", tsc_return_to_user_holding),
	TSC_PRESENT("return-to-user-holding-after-pairs",
		    tsc_return_to_user_holding_after_pairs),
	TSC_PRESENT("return-to-user-holding-release",
		    tsc_return_to_user_holding_release),
	TSC_PRESENT("gem-pin-relock", tsc_gem_pin_relock),
	TSC_PRESENT("importer-notify-relock", tsc_importer_notify_relock),
	TSC_PRESENT("ww-second-ctx-same-class", tsc_ww_second_ctx_same_class),
	TSC_PRESENT("static-importer-map-of-pin-exporter",
		    tsc_static_importer_map_of_pin_exporter),
	TSC_PRESENT("importer-put-locked", tsc_importer_put_locked),
	TSC_PRESENT("resv-lock-after-fini", tsc_resv_lock_after_fini),
	TSC_PRESENT("clean-unlock-unseen-by-hooks",
		    tsc_clean_unlock_unseen_by_hooks),
	TSC_READ("debugfs-read-fault-under-resv",
		 tsc_debugfs_read_fault_under_resv),
	TSC_PRESENT("clean-i915-style-attach-transaction",
		    tsc_clean_i915_style_attach_transaction),
	TSC_PRESENT("clean-resv-txn-inside-modeset-ctx",
		    tsc_clean_resv_txn_inside_modeset_ctx),
	TSC_PRESENT("clean-opposite-order-transactions",
		    tsc_clean_opposite_order_transactions),
	TSC_PRESENT("clean-core-wait-in-attach", tsc_clean_core_wait_in_attach),
	TSC_PRESENT("clean-importer-locked-api", tsc_clean_importer_locked_api),
	TSC_PRESENT("clean-importer-unlocked-api",
		    tsc_clean_importer_unlocked_api),
	TSC_PRESENT("fence-wait-in-repeated-txn",
		    tsc_fence_wait_in_repeated_txn),
	TSC_PRESENT("clean-map-in-repeated-txn", tsc_clean_map_in_repeated_txn),
	TSC_PRESENT("return-to-user-in-repeated-txn",
		    tsc_return_to_user_in_repeated_txn),
	TSC_PRESENT("return-to-user-in-repeated-txn-release",
		    tsc_return_to_user_in_repeated_txn_release),
};

struct device *tsc_dev;
static struct platform_device *tsc_pdev;
static struct dentry *tsc_dir;

static ssize_t tsc_write(struct file *file, const char __user *ubuf,
			 size_t count, loff_t *ppos)
{
	const struct tsc_scenario *s = file->private_data;
	bool run;
	int ret;

	ret = kstrtobool_from_user(ubuf, count, &run);
	if (ret)
		return ret;
	if (!run)
		return count;

	ret = s->run();
	if (ret)
		pr_info("%s: result: setup failed (%d)\n", s->name, ret);
	else
		pr_info("%s: result: done\n", s->name);
	return ret ? ret : count;
}

static const struct file_operations tsc_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = tsc_write,
};

static ssize_t tsc_read(struct file *file, char __user *ubuf, size_t count,
			loff_t *ppos)
{
	const struct tsc_scenario *s = file->private_data;

	/* One record per open: a second read sees the end of the file. */
	if (*ppos)
		return 0;
	count = s->read(ubuf, count);
	if ((ssize_t)count > 0)
		*ppos += count;
	return count;
}

static const struct file_operations tsc_read_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = tsc_read,
};

static int __init tsc_mod_init(void)
{
	unsigned int i;
	int ret;

	tsc_pdev = platform_device_register_simple(KBUILD_MODNAME,
						   PLATFORM_DEVID_NONE,
						   NULL, 0);
	if (IS_ERR(tsc_pdev))
		return PTR_ERR(tsc_pdev);
	tsc_dev = &tsc_pdev->dev;

	/* The exporter DMA-maps its sg_tables for this device. */
	ret = dma_coerce_mask_and_coherent(tsc_dev, DMA_BIT_MASK(64));
	if (ret)
		goto err_dev;

	tsc_dir = debugfs_create_dir(KBUILD_MODNAME, NULL);
	if (IS_ERR(tsc_dir)) {
		ret = PTR_ERR(tsc_dir);
		goto err_dev;
	}

	for (i = 0; i < ARRAY_SIZE(tsc_scenarios); i++) {
		const struct tsc_scenario *s = &tsc_scenarios[i];

		if (s->absent) {
			pr_info("%s: not available on this kernel: %s\n",
				s->name, s->absent);
			continue;
		}
		if (s->read)
			debugfs_create_file(s->name, 0400, tsc_dir, (void *)s,
					    &tsc_read_fops);
		else
			debugfs_create_file(s->name, 0200, tsc_dir, (void *)s,
					    &tsc_fops);
	}

	pr_info("loaded (kernel %u.%u.%u, %s convention)\n",
		LINUX_VERSION_CODE >> 16, (LINUX_VERSION_CODE >> 8) & 0xff,
		LINUX_VERSION_CODE & 0xff,
		TSC_UNIVERSAL_CONVENTION ? "6.2+" : "pre-6.2");
	return 0;

err_dev:
	platform_device_unregister(tsc_pdev);
	return ret;
}

static void __exit tsc_mod_exit(void)
{
	debugfs_remove_recursive(tsc_dir);
	tsc_return_to_user_holding_cleanup();
	tsc_repeats_cleanup();
	platform_device_unregister(tsc_pdev);
	pr_info("unloaded\n");
}

module_init(tsc_mod_init);
module_exit(tsc_mod_exit);

MODULE_DESCRIPTION("dma-buf reservation-lock scenarios for the tracer lab");
MODULE_LICENSE("GPL");
/* 6.13 turned symbol namespaces into string literals. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
MODULE_IMPORT_NS("DMA_BUF");
#else
MODULE_IMPORT_NS(DMA_BUF);
#endif
