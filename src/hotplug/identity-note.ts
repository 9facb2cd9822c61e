// The principal behind an identity's error, for the hotplug log only. The worker names a
// domain's identity by its config label in afsfile-error (guests can read the backend
// directory); an administrator reading xen-hotplug.log wants the Kerberos principal and the
// keytab too, as Xen's block scripts log what they decided. Never written to XenStore.
import { readConfigFile } from '../cli/config-file';
import { identitiesFrom, identityOfError } from '../cli/identity-config';
import { identityStatusName, readRenewStatus } from '../renew/status';

/**
 * "identity L: principal P (keytab K)" for a message of an identity's error, else undefined.
 * The principal is the one the identity's process last used (status/identity-L.json), else the
 * one its config line names, else the keytab's first. Nothing here may fail the script.
 */
export function identityNote(message: string, runDir: string, configFile: string): string | undefined {
  const label = identityOfError(message);
  if (!label) return undefined;
  let principal: string | undefined;
  let keytab: string | undefined;
  try {
    const r = readRenewStatus(runDir, identityStatusName(label));
    if (r.kind === 'ok' && r.status.principal) principal = r.status.principal;
  } catch {
    /* no status: the config says what it can */
  }
  try {
    const spec = identitiesFrom(readConfigFile(configFile, false)).find((s) => s.label === label);
    keytab = spec?.keytab;
    principal ??= spec?.principal ?? (spec ? `the first principal of ${spec.keytab}` : undefined);
  } catch {
    /* a broken config file: the hotplug error says so already */
  }
  return `identity ${label}: principal ${principal ?? 'unknown (no status file and no config line)'}` +
    (keytab ? ` (keytab ${keytab})` : '');
}
