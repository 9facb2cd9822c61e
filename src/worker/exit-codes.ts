// Exit statuses between the supervisor and its device processes.

/** A device process that must not be restarted: it reported why on the device (EX_CONFIG,
 * sysexits.h), e.g. the platform cannot work on this host. */
export const EXIT_PERMANENT = 78;
