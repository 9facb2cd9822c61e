// Exit statuses between the supervisor and its device processes.

/** A device process that must not be restarted: it reported why on the device (EX_CONFIG,
 * sysexits.h), e.g. the platform cannot work on this host. */
export const EXIT_PERMANENT = 78;

/** The device process could not open its image; it said why (to the supervisor, or on the
 * device when started by hand). EX_NOINPUT, sysexits.h. */
export const EXIT_NOT_OPENED = 66;

/** The supervisor refused the image the device process opened (in use elsewhere). */
export const EXIT_REFUSED = 67;
