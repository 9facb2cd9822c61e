// Errors the command line reports in one line, with the exit status they map to.

/** Bad invocation: unknown subcommand, bad option, bad value. Exit 2 with a usage hint. */
export class UsageError extends Error {
  constructor(message: string, readonly role?: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure the user must act on, already phrased for them (exit 1, no stack). */
export class FatalError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'FatalError';
  }
}

/** EX_CONFIG of sysexits.h: the unit's RestartPreventExitStatus names it, so a broken
 * configuration does not loop restarts. */
export const EXIT_CONFIG = 78;

/** A configuration problem (config file, or a value from the environment): exit 78. */
export class ConfigError extends FatalError {
  constructor(message: string) {
    super(message, EXIT_CONFIG);
    this.name = 'ConfigError';
  }
}
