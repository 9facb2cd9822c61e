/*
 * afslock: a second AFS client for the image-lock stages (issue 18 with the OpenAFS client).
 * It asks the file server itself about one file's lock over an Rx connection of its own: a host
 * of its own to the file server (its own UDP port and callback service), not the cache manager
 * that holds the first lock.
 *
 *   afslock [-as NAME | -localauth] [-cell CELL] -server ADDR -fid VOL.VNODE.UNIQ OP
 *     status        RXAFS_FetchStatus: prints "lockCount N" (-1: a write lock, N > 0: N read
 *                   locks, 0: none or the lease lapsed)
 *     try read|write  RXAFS_SetLock; when granted, RXAFS_ReleaseLock at once
 *     hold read|write RXAFS_SetLock; when granted, prints "held", extends the lock every 60 s
 *                   (RXAFS_ExtendLock) until SIGTERM/SIGINT, then RXAFS_ReleaseLock
 *     acl 'NAME RIGHTS'  RXAFS_StoreACL on a directory FID: NAME (e.g. system:anyuser) gets RIGHTS
 *                   (a number, PRSFS_* bits) alone; create NAME  RXAFS_CreateFile in a directory FID,
 *                   prints the new file's FID. These two let tools/afslock-check.sh try the lock calls
 *                   against a bare file server (no cache manager) with -localauth.
 *   Exit: 0 granted (or done), 1 refused by the file server (EAGAIN), 2 any other error.
 *
 * What the answers prove (openafs src/viced/afsfileprocs.c HandleLocking, GetStatus): a file's
 * lock on the server is a count and an expiry time, no owner. SetLock(LockWrite) is granted only
 * at count 0, LockRead at count >= 0; a lock whose time (AFS_LOCKWAIT, 300 s, after the last
 * SetLock/ExtendLock) has passed counts as 0, lazily; FetchStatus reports the count, 0 once the
 * time passed. ReleaseLock decrements the count whoever calls it, so this tool releases only a
 * lock it was granted: a release after a refusal would end the first client's lock.
 *
 * Credentials: -as NAME forges a ticket for the user NAME (e.g. the cell's administrator) with
 * the file server's own key (the cell's rxkad-k5 key in /etc/openafs/server, as 1.8's
 * afsconf_ClientAuth forges one for "afs" in auth/authcon.c GenericAuth, and libafscp's
 * afscp_LocalAuthAs for NAME): the stages use it, so the second client needs neither the KDC nor
 * the cache manager under test (whose own token it would otherwise read). Without -as, the AFS
 * token of the caller's PAG (afsconf_ClientAuthToken: aklog's, from a Kerberos ticket).
 * -localauth: afsconf_ClientAuth's ticket for "afs", which the file server maps to no user:
 * system:anyuser's rights only (plus the implicit l, a of an administrator: not even that, as
 * "afs" is no member of system:administrators), no k or w.
 * Callback service: the file server calls every new client back (TellMeAboutYourself,
 * InitCallBackState) before it serves it (viced/host.c h_GetHost_r) and fails its calls when no
 * one answers: libafscp's (afscp_Init) answers on the same Rx port. The callbacks a FetchStatus
 * promised are given up before exit, so the server never waits for this gone host.
 */
#include <afs/param.h>
#include <afs/stds.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <rx/rx.h>
#include <rx/rxkad.h>
#include <afs/afsint.h>
#include <afs/afscp.h>
#include <afs/auth.h>
#include <afs/cellconfig.h>
#include <afs/dirpath.h>
#include <afs/unified_afs.h>
#include <afs/com_err.h>
#include <rx/rxkad_prototypes.h>
#include <sys/random.h>

#define FS_PORT 7000 /* afs3-fileserver */
#define FS_SERVICE 1

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static const char *code_name(afs_int32 code) {
  switch (code) {
  case 0: return "ok";
  case EAGAIN: return "EAGAIN";
  case UAEAGAIN: return "UAEAGAIN";
  case UAEWOULDBLOCK: return "UAEWOULDBLOCK";
  case EACCES: return "EACCES";
  case UAEACCES: return "UAEACCES";
  case EINVAL: return "EINVAL";
  case UAEINVAL: return "UAEINVAL";
  case 102: return "VNOVNODE";
  case 103: return "VNOVOL";
  case 110: return "VBUSY";
  default: return afs_error_message(code);
  }
}

static int refused(afs_int32 code) {
  return code == EAGAIN || code == UAEAGAIN || code == UAEWOULDBLOCK;
}

static void usage(void) {
  fprintf(stderr, "usage: afslock [-as NAME | -localauth] [-cell CELL] -server ADDR -fid VOL.VNODE.UNIQ "
                  "status | try read|write | hold read|write | acl 'NAME RIGHTS' | create NAME\n");
  exit(2);
}

/* A ticket for NAME (name.instance) sealed with the server's newest rxkad-k5 key, and the rxkad
 * client object that presents it (clear: authenticated, not encrypted). */
static afs_int32 forge(const char *who, struct rx_securityClass **sc, afs_int32 *scindex) {
  static const int enctypes[] = {18, 17, 23, 16, 0}; /* GenericAuth's preference list */
  struct afsconf_dir *dir = afsconf_Open(AFSDIR_SERVER_ETC_DIRPATH);
  struct afsconf_typedKey *key = NULL;
  char name[64], *inst, ticket[512];
  int i, kvno = 0, enctype = 0, len = sizeof(ticket);
  afsconf_keyType type;
  struct rx_opaque *material;
  struct ktc_encryptionKey session;
  afs_int32 code;
  if (!dir) return AFSCONF_NOTFOUND;
  for (i = 0; enctypes[i]; i++)
    if (afsconf_GetLatestKeyByTypes(dir, afsconf_rxkad_krb5, enctypes[i], &key) == 0) break;
  if (!enctypes[i]) return AFSCONF_NOTFOUND;
  afsconf_typedKey_values(key, &type, &kvno, &enctype, &material);
  snprintf(name, sizeof(name), "%s", who);
  inst = strchr(name, '.');
  if (inst) *inst++ = 0; else inst = "";
  /* The session key: 8 random bytes with DES odd parity (rxkad's fcrypt ignores the parity). */
  if (getrandom(session.data, sizeof(session.data), 0) != sizeof(session.data)) return errno;
  for (int b = 0; b < 8; b++) {
    unsigned char c = session.data[b] & 0xfe;
    session.data[b] = c | !(__builtin_popcount(c) & 1);
  }
  memset(ticket, 0, sizeof(ticket));
  code = tkt_MakeTicket5(ticket, &len, enctype, &kvno, material->val, material->len, name, inst, "",
                         time(NULL) - 60, time(NULL) + 86400, &session, "afs", "");
  afsconf_typedKey_put(&key);
  if (code) return code;
  *sc = rxkad_NewClientSecurityObject(rxkad_clear, &session, kvno, len, ticket);
  *scindex = RX_SECIDX_KAD;
  return *sc ? 0 : RXKADBADKEY;
}

static void give_up_callback(struct rx_connection *conn, AFSFid *fid) {
  AFSCBFids fids = {1, fid};
  AFSCallBack cb;
  AFSCBs cbs = {1, &cb};
  memset(&cb, 0, sizeof(cb));
  RXAFS_GiveUpCallBacks(conn, &fids, &cbs);
}

int main(int argc, char **argv) {
  const char *cell = NULL, *server = NULL, *fidtext = NULL, *as = NULL;
  int localauth = 0, i;
  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "-localauth")) localauth = 1;
    else if (!strcmp(argv[i], "-as") && i + 1 < argc) as = argv[++i];
    else if (!strcmp(argv[i], "-cell") && i + 1 < argc) cell = argv[++i];
    else if (!strcmp(argv[i], "-server") && i + 1 < argc) server = argv[++i];
    else if (!strcmp(argv[i], "-fid") && i + 1 < argc) fidtext = argv[++i];
    else usage();
  }
  if (!server || !fidtext || i >= argc) usage();
  const char *op = argv[i++];
  const char *kind = i < argc ? argv[i++] : NULL;
  if (i != argc) usage();
  ViceLockType type = LockRead;
  if (!strcmp(op, "status")) {
    if (kind) usage();
  } else if (!strcmp(op, "acl") || !strcmp(op, "create")) {
    if (!kind) usage();
  } else if (!strcmp(op, "try") || !strcmp(op, "hold")) {
    if (!kind) usage();
    if (!strcmp(kind, "write")) type = LockWrite;
    else if (strcmp(kind, "read")) usage();
  } else {
    usage();
  }

  AFSFid fid;
  if (sscanf(fidtext, "%u.%u.%u", &fid.Volume, &fid.Vnode, &fid.Unique) != 3) usage();
  struct in_addr addr;
  if (inet_pton(AF_INET, server, &addr) != 1) {
    fprintf(stderr, "afslock: -server takes an IPv4 address: %s\n", server);
    return 2;
  }

  /* Rx and the callback service (libafscp), on one random UDP port. */
  if (afscp_Init(NULL) != 0) {
    fprintf(stderr, "afslock: cannot start Rx and the callback service\n");
    return 2;
  }

  struct rx_securityClass *sc = NULL;
  afs_int32 scindex = 0, code;
  if (as) {
    code = forge(as, &sc, &scindex);
  } else if (localauth) {
    struct afsconf_dir *dir = afsconf_Open(AFSDIR_SERVER_ETC_DIRPATH);
    if (!dir) {
      fprintf(stderr, "afslock: cannot open %s\n", AFSDIR_SERVER_ETC_DIRPATH);
      return 2;
    }
    code = afsconf_ClientAuth(dir, &sc, &scindex);
  } else {
    struct afsconf_dir *dir = afsconf_Open(AFSDIR_CLIENT_ETC_DIRPATH);
    struct afsconf_cell info;
    char local[MAXCELLCHARS];
    if (!dir) {
      fprintf(stderr, "afslock: cannot open %s\n", AFSDIR_CLIENT_ETC_DIRPATH);
      return 2;
    }
    if (!cell) {
      if (afsconf_GetLocalCell(dir, local, sizeof(local)) != 0) {
        fprintf(stderr, "afslock: no local cell in %s\n", AFSDIR_CLIENT_ETC_DIRPATH);
        return 2;
      }
      cell = local;
    }
    memset(&info, 0, sizeof(info));
    snprintf(info.name, sizeof(info.name), "%s", cell);
    time_t expires = 0;
    code = afsconf_ClientAuthToken(&info, 0, &sc, &scindex, &expires);
    if (code == 0) printf("token of %s, expires in %ld s\n", cell, (long)(expires - time(NULL)));
  }
  if (code != 0 || !sc) {
    fprintf(stderr, "afslock: no credentials (%s): %d %s\n", as ? "-as" : localauth ? "-localauth" : "token", code,
            afs_error_message(code));
    return 2;
  }
  struct rx_connection *conn = rx_NewConnection(addr.s_addr, htons(FS_PORT), FS_SERVICE, sc, scindex);
  if (!conn) {
    fprintf(stderr, "afslock: no Rx connection\n");
    return 2;
  }

  int rc = 0;
  AFSVolSync sync;
  if (!strcmp(op, "acl")) {
    char text[512];
    AFSOpaque acl;
    AFSFetchStatus st;
    /* The ACL text of the RPC: positive and negative entry counts, then "name\trights" lines. */
    char name[256];
    int rights;
    if (sscanf(kind, "%255s %d", name, &rights) != 2) usage();
    snprintf(text, sizeof(text), "1\n0\n%s\t%d\n", name, rights);
    acl.AFSOpaque_len = strlen(text) + 1;
    acl.AFSOpaque_val = text;
    code = RXAFS_StoreACL(conn, &fid, &acl, &st, &sync);
    printf("storeacl: %d %s\n", code, code_name(code));
    if (code != 0) rc = 2;
  } else if (!strcmp(op, "create")) {
    AFSStoreStatus in;
    AFSFid out;
    AFSFetchStatus st, dir;
    AFSCallBack cb;
    memset(&in, 0, sizeof(in));
    in.Mask = AFS_SETMODE;
    in.UnixModeBits = 0644;
    code = RXAFS_CreateFile(conn, &fid, kind, &in, &out, &st, &dir, &cb, &sync);
    if (code == 0) {
      printf("fid %u.%u.%u\n", out.Volume, out.Vnode, out.Unique);
      give_up_callback(conn, &out);
    } else {
      printf("createfile: %d %s\n", code, code_name(code));
      rc = 2;
    }
  } else if (!strcmp(op, "status")) {
    AFSFetchStatus st;
    AFSCallBack cb;
    memset(&st, 0, sizeof(st));
    code = RXAFS_FetchStatus(conn, &fid, &st, &cb, &sync);
    if (code == 0) {
      printf("lockCount %d length %u dataVersion %u\n", st.lockCount, st.Length, st.DataVersion);
      give_up_callback(conn, &fid);
    } else {
      printf("fetchstatus: %d %s\n", code, code_name(code));
      rc = 2;
    }
  } else {
    const char *kname = type == LockWrite ? "write" : "read";
    code = RXAFS_SetLock(conn, &fid, type, &sync);
    printf("setlock %s: %d %s\n", kname, code, code_name(code));
    fflush(stdout);
    if (code != 0) {
      rc = refused(code) ? 1 : 2;
    } else {
      if (!strcmp(op, "hold")) {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        printf("held\n");
        fflush(stdout);
        int waited = 0;
        while (!stop) {
          sleep(1);
          if (++waited < 60) continue;
          waited = 0;
          code = RXAFS_ExtendLock(conn, &fid, &sync);
          printf("extendlock: %d %s\n", code, code_name(code));
          fflush(stdout);
        }
      }
      code = RXAFS_ReleaseLock(conn, &fid, &sync);
      printf("releaselock: %d %s\n", code, code_name(code));
      if (code != 0) rc = 2;
    }
  }
  fflush(stdout);
  rx_DestroyConnection(conn);
  afscp_Finalize();
  return rc;
}
