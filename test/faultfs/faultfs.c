/*
 * faultfs: a FUSE file system that behaves like a network file system's client cache, for
 * tests. Files live in a backing directory; writes are kept in memory (per file, by 4 KiB
 * page) and stored to the backing file only at fsync, flush (close) and release, as the
 * OpenAFS client stores dirty chunks at fsync/close. On command it hangs, or fails open,
 * read, write or fsync with an errno for a time window, and can drop a file's buffered data
 * when a store fails (the OpenAFS client discards dirty chunks after a failed store on EACCES
 * or over quota, after which a later fsync succeeds with the data gone).
 *
 * Usage: faultfs BACKING_DIR MOUNTPOINT CONTROL_SOCKET [fuse options, e.g. -f -o max_threads=64]
 *
 * Control (one line per connection on the unix socket, answered with one line):
 *   fail OPS ERRNO MS [SUBSTRING]   OPS: comma list of stat,open,read,write,fsync,close (fsync covers
 *                                   the stores at flush and release too; close is every close(2),
 *                                   FUSE's flush, data or not); ERRNO: EACCES, ETIMEDOUT,
 *                                   EDQUOT, ENOSPC, EIO; only paths containing SUBSTRING
 *   hang OPS MS [SUBSTRING]         those operations block until the window ends (or clear)
 *   drop on|off                     a failed store drops the file's buffered data
 *   clear                           ends every window now (hung operations go on)
 *   stats                           counters: "faults N hung N stores N dropped_bytes N ..."
 *
 * Every request is served from its own thread (libfuse's multi-threaded loop), so a hung
 * operation blocks only itself; control runs on its own thread.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#define PAGE 4096
#define BUCKETS 4096
#define MAX_FAULTS 32

enum { OP_OPEN = 1, OP_READ = 2, OP_WRITE = 4, OP_FSYNC = 8, OP_STAT = 16, OP_CLOSE = 32 };

struct page {
    uint64_t index;
    struct page *next;
    unsigned char data[PAGE];
};

/* One per backing path while open (several opens share it, as they share a cache). */
struct file {
    char *path;
    int fd;          /* the backing file */
    int refs;
    uint64_t size;   /* with buffered writes past the backing file's end */
    uint64_t dirty;  /* pages buffered */
    struct page *buckets[BUCKETS];
    struct file *next;
};

struct fault {
    int ops;
    int err;         /* 0: hang */
    uint64_t until;  /* CLOCK_MONOTONIC ms */
    char match[256];
};

static char *backing;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static struct file *files;
static struct fault faults[MAX_FAULTS];
static int drop_on_failed_store;
static uint64_t n_faults, n_hung, n_stores, n_failed_stores, dropped_bytes, n_reads, n_writes;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *real_path(const char *path)
{
    char *p;
    if (asprintf(&p, "%s%s", backing, path) < 0)
        return NULL;
    return p;
}

/* Applies the faults for op on path (lock held): 0 to go on, or -errno. Hangs wait here. */
static int fault_check(int op, const char *path)
{
    for (;;) {
        uint64_t t = now_ms();
        struct fault *hang = NULL;
        for (int i = 0; i < MAX_FAULTS; i++) {
            struct fault *f = &faults[i];
            if (!f->ops || f->until <= t || !(f->ops & op) || !strstr(path, f->match))
                continue;
            if (f->err) {
                n_faults++;
                return -f->err;
            }
            hang = f;
        }
        if (!hang)
            return 0;
        n_hung++;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait = hang->until - t;
        if (wait > 200)
            wait = 200;
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (long)(wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&changed, &lock, &ts);
        n_hung--;
    }
}

static struct file *find_file(const char *path)
{
    for (struct file *f = files; f; f = f->next)
        if (!strcmp(f->path, path))
            return f;
    return NULL;
}

static struct page *find_page(struct file *f, uint64_t index)
{
    for (struct page *p = f->buckets[index % BUCKETS]; p; p = p->next)
        if (p->index == index)
            return p;
    return NULL;
}

static void drop_pages(struct file *f)
{
    for (int b = 0; b < BUCKETS; b++) {
        struct page *p = f->buckets[b];
        while (p) {
            struct page *n = p->next;
            free(p);
            p = n;
        }
        f->buckets[b] = NULL;
    }
    f->dirty = 0;
}

/* Writes every buffered page to the backing file and fsyncs it (lock held). */
static int store(struct file *f, const char *path)
{
    n_stores++;
    int r = fault_check(OP_FSYNC, path);
    if (r) {
        n_failed_stores++;
        if (drop_on_failed_store && f->dirty) {
            dropped_bytes += f->dirty * PAGE;
            drop_pages(f);
        }
        return r;
    }
    for (int b = 0; b < BUCKETS; b++) {
        for (struct page *p = f->buckets[b]; p; p = p->next) {
            uint64_t off = p->index * PAGE;
            size_t len = PAGE;
            if (off + len > f->size)
                len = f->size > off ? f->size - off : 0;
            if (len && pwrite(f->fd, p->data, len, (off_t)off) != (ssize_t)len)
                return -errno;
        }
    }
    if (fsync(f->fd) < 0)
        return -errno;
    drop_pages(f);
    return 0;
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&lock);
    int fr = fault_check(OP_STAT, path);
    pthread_mutex_unlock(&lock);
    if (fr)
        return fr;
    char *rp = real_path(path);
    if (!rp)
        return -ENOMEM;
    int r = lstat(rp, st) < 0 ? -errno : 0;
    free(rp);
    if (r)
        return r;
    pthread_mutex_lock(&lock);
    struct file *f = find_file(path);
    if (f && f->size > (uint64_t)st->st_size)
        st->st_size = (off_t)f->size;
    pthread_mutex_unlock(&lock);
    return 0;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags)
{
    (void)off; (void)fi; (void)flags;
    char *rp = real_path(path);
    if (!rp)
        return -ENOMEM;
    DIR *d = opendir(rp);
    free(rp);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)))
        fill(buf, e->d_name, NULL, 0, 0);
    closedir(d);
    return 0;
}

static int ff_open(const char *path, struct fuse_file_info *fi)
{
    pthread_mutex_lock(&lock);
    int r = fault_check(OP_OPEN, path);
    if (r) {
        pthread_mutex_unlock(&lock);
        return r;
    }
    struct file *f = find_file(path);
    if (!f) {
        char *rp = real_path(path);
        int fd = rp ? open(rp, O_RDWR | O_CLOEXEC) : -1;
        if (fd < 0 && rp && (errno == EACCES || errno == EROFS))
            fd = open(rp, O_RDONLY | O_CLOEXEC);
        int e = errno;
        free(rp);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            if (fd >= 0)
                close(fd);
            pthread_mutex_unlock(&lock);
            return -e;
        }
        f = calloc(1, sizeof *f);
        f->path = strdup(path);
        f->fd = fd;
        f->size = (uint64_t)st.st_size;
        f->next = files;
        files = f;
    }
    f->refs++;
    pthread_mutex_unlock(&lock);
    /* Every read and write comes here (no kernel page cache over the buffered data), and
     * O_DIRECT opens are accepted. */
    fi->direct_io = 1;
    return 0;
}

static int ff_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&lock);
    int r = fault_check(OP_READ, path);
    struct file *f = find_file(path);
    if (r || !f) {
        pthread_mutex_unlock(&lock);
        return r ? r : -EBADF;
    }
    n_reads++;
    if ((uint64_t)off >= f->size) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    if ((uint64_t)off + size > f->size)
        size = f->size - (uint64_t)off;
    ssize_t got = pread(f->fd, buf, size, off);
    if (got < 0) {
        int e = errno;
        pthread_mutex_unlock(&lock);
        return -e;
    }
    if ((size_t)got < size)
        memset(buf + got, 0, size - (size_t)got);
    for (uint64_t pos = (uint64_t)off; pos < (uint64_t)off + size;) {
        uint64_t index = pos / PAGE, in = pos % PAGE;
        uint64_t n = PAGE - in;
        if (pos + n > (uint64_t)off + size)
            n = (uint64_t)off + size - pos;
        struct page *p = find_page(f, index);
        if (p)
            memcpy(buf + (pos - (uint64_t)off), p->data + in, n);
        pos += n;
    }
    pthread_mutex_unlock(&lock);
    return (int)size;
}

static int ff_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&lock);
    int r = fault_check(OP_WRITE, path);
    struct file *f = find_file(path);
    if (r || !f) {
        pthread_mutex_unlock(&lock);
        return r ? r : -EBADF;
    }
    n_writes++;
    for (uint64_t pos = (uint64_t)off; pos < (uint64_t)off + size;) {
        uint64_t index = pos / PAGE, in = pos % PAGE;
        uint64_t n = PAGE - in;
        if (pos + n > (uint64_t)off + size)
            n = (uint64_t)off + size - pos;
        struct page *p = find_page(f, index);
        if (!p) {
            p = malloc(sizeof *p);
            if (!p) {
                pthread_mutex_unlock(&lock);
                return -ENOMEM;
            }
            p->index = index;
            /* Read-modify-write from the backing file (and zeros past its end). */
            ssize_t got = pread(f->fd, p->data, PAGE, (off_t)(index * PAGE));
            if (got < 0)
                got = 0;
            memset(p->data + got, 0, PAGE - (size_t)got);
            p->next = f->buckets[index % BUCKETS];
            f->buckets[index % BUCKETS] = p;
            f->dirty++;
        }
        memcpy(p->data + in, buf + (pos - (uint64_t)off), n);
        pos += n;
    }
    if ((uint64_t)off + size > f->size)
        f->size = (uint64_t)off + size;
    pthread_mutex_unlock(&lock);
    return (int)size;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)datasync; (void)fi;
    pthread_mutex_lock(&lock);
    struct file *f = find_file(path);
    int r = f ? store(f, path) : -EBADF;
    pthread_mutex_unlock(&lock);
    return r;
}

/* close(2): the client stores what is buffered (and close reports a failed store). */
static int ff_flush(const char *path, struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&lock);
    /* A close(2) that waits for the server whether or not there is data to store. */
    int r = fault_check(OP_CLOSE, path);
    struct file *f = find_file(path);
    if (!r)
        r = f && f->dirty ? store(f, path) : 0;
    pthread_mutex_unlock(&lock);
    return r;
}

static int ff_release(const char *path, struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&lock);
    struct file *f = find_file(path);
    if (f && --f->refs == 0) {
        if (f->dirty)
            store(f, path); /* nobody to tell: as the client's last close */
        if (f->dirty)
            drop_pages(f);
        close(f->fd);
        for (struct file **pp = &files; *pp; pp = &(*pp)->next) {
            if (*pp == f) {
                *pp = f->next;
                break;
            }
        }
        free(f->path);
        free(f);
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    (void)fi;
    char *rp = real_path(path);
    if (!rp)
        return -ENOMEM;
    int r = truncate(rp, size) < 0 ? -errno : 0;
    free(rp);
    pthread_mutex_lock(&lock);
    struct file *f = find_file(path);
    if (!r && f)
        f->size = (uint64_t)size;
    pthread_mutex_unlock(&lock);
    return r;
}

static int ff_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return statvfs(backing, st) < 0 ? -errno : 0;
}

static int parse_ops(const char *s)
{
    int ops = 0;
    if (strstr(s, "open")) ops |= OP_OPEN;
    if (strstr(s, "read")) ops |= OP_READ;
    if (strstr(s, "write")) ops |= OP_WRITE;
    if (strstr(s, "fsync")) ops |= OP_FSYNC;
    if (strstr(s, "stat")) ops |= OP_STAT;
    if (strstr(s, "close")) ops |= OP_CLOSE;
    return ops;
}

static int parse_errno(const char *s)
{
    static const struct { const char *name; int err; } names[] = {
        { "EACCES", EACCES }, { "ETIMEDOUT", ETIMEDOUT }, { "EDQUOT", EDQUOT },
        { "ENOSPC", ENOSPC }, { "EIO", EIO }, { "EKEYEXPIRED", EKEYEXPIRED },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name))
            return names[i].err;
    return 0;
}

static void command(char *line, char *reply, size_t cap)
{
    char verb[16] = "", a[64] = "", b[64] = "", c[64] = "", d[256] = "";
    int n = sscanf(line, "%15s %63s %63s %63s %255s", verb, a, b, c, d);
    pthread_mutex_lock(&lock);
    if (!strcmp(verb, "fail") || !strcmp(verb, "hang")) {
        int hang = !strcmp(verb, "hang");
        int ops = parse_ops(a);
        int err = hang ? 0 : parse_errno(b);
        const char *ms = hang ? b : c;
        const char *match = hang ? (n >= 4 ? c : "") : (n >= 5 ? d : "");
        int slot = -1;
        uint64_t t = now_ms();
        for (int i = 0; i < MAX_FAULTS && slot < 0; i++)
            if (!faults[i].ops || faults[i].until <= t)
                slot = i;
        if (!ops || (!hang && !err) || slot < 0 || atoll(ms) <= 0) {
            snprintf(reply, cap, "error: bad command\n");
        } else {
            faults[slot].ops = ops;
            faults[slot].err = err;
            faults[slot].until = t + (uint64_t)atoll(ms);
            snprintf(faults[slot].match, sizeof faults[slot].match, "%s", match);
            snprintf(reply, cap, "ok\n");
        }
    } else if (!strcmp(verb, "drop")) {
        drop_on_failed_store = !strcmp(a, "on");
        snprintf(reply, cap, "ok\n");
    } else if (!strcmp(verb, "clear")) {
        memset(faults, 0, sizeof faults);
        pthread_cond_broadcast(&changed);
        snprintf(reply, cap, "ok\n");
    } else if (!strcmp(verb, "stats")) {
        uint64_t dirty = 0;
        for (struct file *f = files; f; f = f->next)
            dirty += f->dirty * PAGE;
        snprintf(reply, cap,
                 "faults %llu hung %llu stores %llu failed_stores %llu dropped_bytes %llu reads %llu writes %llu "
                 "dirty_bytes %llu\n",
                 (unsigned long long)n_faults, (unsigned long long)n_hung, (unsigned long long)n_stores,
                 (unsigned long long)n_failed_stores, (unsigned long long)dropped_bytes,
                 (unsigned long long)n_reads, (unsigned long long)n_writes, (unsigned long long)dirty);
    } else {
        snprintf(reply, cap, "error: unknown command\n");
    }
    pthread_mutex_unlock(&lock);
}

static void *control(void *arg)
{
    int srv = (int)(intptr_t)arg;
    for (;;) {
        int c = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        char line[512];
        size_t len = 0;
        while (len < sizeof line - 1) {
            ssize_t got = read(c, line + len, sizeof line - 1 - len);
            if (got <= 0)
                break;
            len += (size_t)got;
            if (memchr(line, '\n', len))
                break;
        }
        line[len] = 0;
        char reply[512];
        command(line, reply, sizeof reply);
        if (write(c, reply, strlen(reply)) < 0) {
            /* the caller went away */
        }
        close(c);
    }
    return NULL;
}

/* The kernel sends asynchronous requests (io_uring's reads and writes of a direct_io file go
 * through fuse_direct_IO's async path) as "background" requests, at most max_background (12
 * by default) per connection (fs/fuse/dev.c, Documentation/filesystems/fuse.rst): a hung file's
 * requests would fill them and stall every other file of the mount, which a network file
 * system's client does not do for files on different volumes. Raised so that each file is on
 * its own, as the tests assume. */
static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)cfg;
    conn->max_background = 1024;
    conn->congestion_threshold = 768;
    return NULL;
}

static const struct fuse_operations ops = {
    .init = ff_init,
    .getattr = ff_getattr,
    .readdir = ff_readdir,
    .open = ff_open,
    .read = ff_read,
    .write = ff_write,
    .fsync = ff_fsync,
    .flush = ff_flush,
    .release = ff_release,
    .truncate = ff_truncate,
    .statfs = ff_statfs,
};

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: faultfs BACKING_DIR MOUNTPOINT CONTROL_SOCKET [fuse options]\n");
        return 2;
    }
    backing = realpath(argv[1], NULL);
    if (!backing) {
        perror(argv[1]);
        return 1;
    }
    int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[3]);
    unlink(argv[3]);
    if (srv < 0 || bind(srv, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(srv, 16) < 0) {
        perror(argv[3]);
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, control, (void *)(intptr_t)srv);
    /* fuse_main gets: argv0 MOUNTPOINT [options] */
    char **fargv = calloc((size_t)argc, sizeof *fargv);
    int fargc = 0;
    fargv[fargc++] = argv[0];
    fargv[fargc++] = argv[2];
    for (int i = 4; i < argc; i++)
        fargv[fargc++] = argv[i];
    return fuse_main(fargc, fargv, &ops, NULL);
}
