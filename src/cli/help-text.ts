// What --help, the man page and bash completion say beyond the option table: exit statuses,
// environment, examples. One place, so the three never disagree.

export const EXIT_STATUS: Record<string, ReadonlyArray<readonly [string, string]>> = {
  '': [['0', 'success'], ['1', 'failure, explained on stderr'], ['2', 'bad command line (usage)'],
    ['70', 'internal error (a bug: please report the message)'],
    ['78', 'configuration error (the config file or an environment variable); systemd does not restart on it']],
  status: [['0', 'the worker runs and no device failed'], ['1', 'a device failed (see its line)'],
    ['3', 'the worker is not running']],
  check: [['0', 'every check passed'], ['1', 'at least one problem (each with its fix)']],
  hotplug: [['0', 'libxl may go on'], ['1', 'failure; the reason is in hotplug-error, which xl shows']],
  create: [['0', 'created'], ['1', 'not created (nothing left behind)'],
    ['130', 'interrupted (Ctrl-C); nothing left behind']],
};

export const ENVIRONMENT: ReadonlyArray<readonly [string, string]> = [
  ['AFSFILE_CONFIG', 'the config file (default /etc/xen/afsfile.conf)'],
  ['AFSFILE_RUN_DIR', 'the run dir (default /run/afsfile)'],
  ['XENSTORED_PATH', 'xenstored\'s unix socket (default: /run/xenstored/socket, then /dev/xen/xenbus)'],
  ['DEBUG', 'debug namespaces, e.g. DEBUG=afsfile:* or DEBUG=afsfile:worker,afsfile:engine'],
  ['XENBUS_PATH', 'hotplug: the backend directory libxl gives the script'],
  ['AFSFILE_HOTPLUG_LOG', 'hotplug: the log file (default /var/log/xen/xen-hotplug.log)'],
  ['NOTIFY_SOCKET', 'worker: systemd\'s readiness socket (Type=notify)'],
  ['JOURNAL_STREAM', 'set by systemd when stderr is the journal'],
];

export const EXAMPLES: Record<string, readonly string[]> = {
  '': [
    'afsfile check                         # is this dom0 ready? each problem with its fix',
    'afsfile status                        # devices as a table, like xl block-list',
    'afsfile create /afs/example.org/vm/disk.img --size 20G',
    'systemctl reload afsfile              # read /etc/xen/afsfile.conf again',
  ],
  status: ['afsfile status 7                      # domain 7 only', 'afsfile status --json | jq .devices'],
  check: ['afsfile check --json', 'afsfile check --selftest              # also exercise /dev/xen/evtchn and gntdev'],
  create: ['afsfile create /srv/vm/a.img --size 20G                 # sparse',
    'afsfile create /afs/example.org/vm/b.img --size 8G --preallocate'],
  detach: ['afsfile detach 7 xvda'],
  renew: ['afsfile renew --keytab /etc/afsfile/afsfile.keytab --cell example.org -- afsfile worker'],
  demo: ['afsfile demo --seconds 10', 'afsfile demo --image /srv/scratch.img --size 1G'],
};
