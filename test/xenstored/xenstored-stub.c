/*
 * LD_PRELOAD library that lets Debian's unmodified C xenstored (xen-utils-4.17) run without a
 * hypervisor, so tests talk to the real daemon over its unix socket.
 *
 * It replaces the entry points xenstored imports from libxenctrl, libxenevtchn and libxengnttab
 * (`nm -D --undefined-only /usr/lib/xen-4.17/bin/xenstored`):
 *   - every domid exists and is running (xc_domain_getinfo), so INTRODUCE works for any guest;
 *   - the event channel fd is an eventfd nobody writes, so xenstored's poll never wakes for it;
 *   - grant maps are anonymous zeroed pages (an empty ring: the "guest" never sends anything);
 * and redirects /proc/xen/xsd_port and /proc/xen/xsd_kva (dom0's store port and ring page) to
 * files under $XENSTORED_STUB_DIR, which the test creates.
 *
 * Only what xenstored reads is modelled. The real libraries are never loaded for these symbols:
 * the preloaded definitions win symbol resolution.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

/* A non-NULL handle for the open functions; xenstored only passes it back to us. */
static int dummy_handle;
static int evtchn_fd = -1;
static uint32_t next_port = 10;

/* ---- /proc/xen redirection ---- */

static const char *redirect(const char *path, char *buf, size_t len)
{
	const char *dir = getenv("XENSTORED_STUB_DIR");
	if (!dir || !path)
		return path;
	if (strcmp(path, "/proc/xen/xsd_port") == 0) {
		snprintf(buf, len, "%s/xsd_port", dir);
		return buf;
	}
	if (strcmp(path, "/proc/xen/xsd_kva") == 0) {
		snprintf(buf, len, "%s/xsd_kva", dir);
		return buf;
	}
	return path;
}

int open(const char *path, int flags, ...)
{
	static int (*real_open)(const char *, int, ...);
	char buf[4096];
	mode_t mode = 0;
	if (!real_open)
		real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return real_open(redirect(path, buf, sizeof buf), flags, mode);
}

/* ---- libxenctrl ---- */

/* The leading fields of xc_dominfo_t (xenctrl.h, Xen 4.17); xenstored reads only these. */
struct dominfo_prefix {
	uint32_t domid;
	uint32_t ssidref;
	unsigned int dying : 1, crashed : 1, shutdown : 1, paused : 1, blocked : 1, running : 1,
		hvm : 1, debugged : 1, xenstore : 1, hap : 1;
	unsigned int shutdown_reason;
};

void *xc_interface_open(void *logger, void *dombuild_logger, unsigned flags)
{
	(void)logger; (void)dombuild_logger; (void)flags;
	return &dummy_handle;
}

int xc_interface_close(void *xch)
{
	(void)xch;
	return 0;
}

/* Xen >= 4.18's xenstored asks for one domain (xc_domain_getinfo_single, tools/libs/ctrl in
 * xen.git): 0 and a running domain. Only the first 8 bytes of xc_domaininfo_t (struct
 * xen_domctl_getdomaininfo: domain, pad1, flags) are written; flags 0 = neither dying nor shut
 * down, which is all xenstored reads. */
int xc_domain_getinfo_single(void *xch, uint32_t domid, void *info)
{
	uint16_t d = (uint16_t)domid;
	(void)xch;
	memset(info, 0, 8);
	memcpy(info, &d, sizeof d);
	return 0;
}

int xc_domain_getinfo(void *xch, uint32_t first_domid, unsigned int max_doms, void *info)
{
	struct dominfo_prefix *d = info;
	(void)xch;
	if (max_doms < 1)
		return 0;
	memset(d, 0, sizeof *d);
	d->domid = first_domid;
	d->running = 1;
	return 1;
}

/* ---- libxenevtchn ---- */

void *xenevtchn_open(void *logger, unsigned flags)
{
	(void)logger; (void)flags;
	if (evtchn_fd < 0)
		evtchn_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return evtchn_fd < 0 ? NULL : &dummy_handle;
}

void *xenevtchn_fdopen(void *logger, int fd, unsigned flags)
{
	(void)fd;
	return xenevtchn_open(logger, flags);
}

int xenevtchn_fd(void *xce)
{
	(void)xce;
	return evtchn_fd;
}

int xenevtchn_notify(void *xce, uint32_t port)
{
	(void)xce; (void)port;
	return 0;
}

int xenevtchn_bind_interdomain(void *xce, uint32_t domid, uint32_t remote_port)
{
	(void)xce; (void)domid; (void)remote_port;
	return (int)next_port++;
}

int xenevtchn_bind_virq(void *xce, unsigned int virq)
{
	(void)xce; (void)virq;
	return (int)next_port++;
}

int xenevtchn_unbind(void *xce, uint32_t port)
{
	(void)xce; (void)port;
	return 0;
}

/* Never reached in practice: nothing makes the eventfd readable. */
int xenevtchn_pending(void *xce)
{
	(void)xce;
	errno = EAGAIN;
	return -1;
}

int xenevtchn_unmask(void *xce, uint32_t port)
{
	(void)xce; (void)port;
	return 0;
}

/* ---- libxengnttab ---- */

void *xengnttab_open(void *logger, unsigned flags)
{
	(void)logger; (void)flags;
	return &dummy_handle;
}

int xengnttab_close(void *xgt)
{
	(void)xgt;
	return 0;
}

int xengnttab_set_max_grants(void *xgt, uint32_t count)
{
	(void)xgt; (void)count;
	return 0;
}

void *xengnttab_map_grant_ref(void *xgt, uint32_t domid, uint32_t ref, int prot)
{
	void *p;
	(void)xgt; (void)domid; (void)ref; (void)prot;
	p = mmap(NULL, (size_t)getpagesize(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

int xengnttab_unmap(void *xgt, void *start_address, uint32_t count)
{
	(void)xgt;
	return munmap(start_address, (size_t)count * (size_t)getpagesize());
}
