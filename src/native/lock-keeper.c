/* Starting and asking a lock keeper (keeper/lock-keeper.c, the program): the process that holds
 * an image's flock where the file system owns a flock by process (OpenAFS) rather than by open
 * file description (src/image/lock.ts). Both calls block (the keeper's flock asks the file
 * server) and run on threads of their own (thread-op.c).
 *
 * The keeper program is built before the addon (build.mjs) and embedded here; it is exec'd from
 * a sealed memfd, so it needs no file on the host and keeps none of this process's memory. It
 * is the grandchild of a double fork whose middle process ends at once: the keeper belongs to
 * init (or the nearest subreaper), in a session of its own, and lives on after this process
 * (a successor adopts the lock by taking this end of the socket with pidfd_getfd). */
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AFS_KEEPER_ELF
#error "AFS_KEEPER_ELF: the path of the built keeper program (build.mjs)"
#endif

/* The program's bytes, from the file build.mjs made. */
__asm__(".section .rodata\n.balign 16\nafs_keeper_elf:\n.incbin \"" AFS_KEEPER_ELF "\"\nafs_keeper_elf_end:\n"
        ".previous\n");
extern const unsigned char afs_keeper_elf[] __asm__("afs_keeper_elf");
extern const unsigned char afs_keeper_elf_end[] __asm__("afs_keeper_elf_end");

static int memfd = -1, memfd_err;

/* Once per process: the program into a memfd, sealed, close-on-exec. */
static void make_memfd(void) {
  size_t len = (size_t)(afs_keeper_elf_end - afs_keeper_elf);
  int fd = memfd_create("afsfile-lock", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) { memfd_err = errno; return; }
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, afs_keeper_elf + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { memfd_err = n < 0 ? errno : EIO; close(fd); return; }
    off += (size_t)n;
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    memfd_err = errno;
    close(fd);
    return;
  }
  memfd = fd;
}

/* Reads exactly n bytes: 0, or an errno (EPIPE at EOF: the keeper is gone). */
static int read_all(int fd, void *buf, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    if (r == 0) return EPIPE;
    got += (size_t)r;
  }
  return 0;
}

/* The grandchild, between fork and exec: only async-signal-safe calls. fd 0 the image, 1 the
 * socket, 2 the program (close-on-exec), nothing else. */
__attribute__((noreturn)) static void become_keeper(int image, int sock, int shared) {
  int a = fcntl(image, F_DUPFD, 3), b = fcntl(sock, F_DUPFD, 3), c = fcntl(memfd, F_DUPFD, 3);
  if (a < 0 || b < 0 || c < 0 || dup2(a, 0) < 0 || dup2(b, 1) < 0 || dup2(c, 2) < 0 ||
      fcntl(2, F_SETFD, FD_CLOEXEC) < 0) _exit(127);
  if (syscall(SYS_close_range, 3, ~0U, 0) < 0) {
    for (int fd = 3; fd < 65536; fd++) close(fd);
  }
  char *const argv[] = { "afsfile-lock", shared ? "sh" : "ex", NULL };
  char *const envp[] = { NULL };
  syscall(SYS_execveat, 2, "", argv, envp, AT_EMPTY_PATH);
  int msg[2] = { (int)getpid(), -errno }; /* negative: the keeper could not start */
  ssize_t w = write(1, msg, sizeof msg);
  (void)w;
  _exit(127);
}

int afs_keeper_start(int image, int shared, int *sock, int *pid, const char **what) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, make_memfd);
  *what = "memfd_create";
  if (memfd < 0) return memfd_err ? memfd_err : EIO;
  int sv[2];
  *what = "socketpair";
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return errno;
  *what = "fork";
  pid_t mid = fork();
  if (mid < 0) {
    int e = errno;
    close(sv[0]);
    close(sv[1]);
    return e;
  }
  if (mid == 0) {
    close(sv[0]);
    setsid();
    pid_t k = fork();
    if (k == 0) become_keeper(image, sv[1], shared);
    _exit(k < 0 ? 1 : 0);
  }
  close(sv[1]);
  int st = 0;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    close(sv[0]);
    return EAGAIN; /* the middle process could not fork */
  }
  int msg[2] = { 0, 0 };
  *what = "read";
  int e = read_all(sv[0], msg, sizeof msg);
  if (e == 0 && msg[1] < 0) { e = -msg[1]; *what = "execveat"; }
  else if (e == 0) { e = msg[1]; *what = "flock"; }
  *pid = msg[0];
  if (e == 0) {
    *sock = sv[0];
    return 0;
  }
  close(sv[0]);
  return e;
}

int afs_keeper_ask(int sock, int *pid) {
  char b = '?';
  ssize_t w;
  do w = send(sock, &b, 1, MSG_NOSIGNAL); while (w < 0 && errno == EINTR);
  if (w < 0) return errno;
  int msg[2];
  int e = read_all(sock, msg, sizeof msg);
  if (e) return e;
  *pid = msg[0];
  return msg[1];
}
