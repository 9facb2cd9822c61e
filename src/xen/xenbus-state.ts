// XenbusState values (xen.git xen/include/public/io/xenbus.h), stored as decimal strings.
export const XenbusState = {
  Unknown: 0,
  Initialising: 1,
  InitWait: 2,
  Initialised: 3,
  Connected: 4,
  Closing: 5,
  Closed: 6,
  Reconfiguring: 7,
  Reconfigured: 8,
} as const;

export type XenbusStateValue = (typeof XenbusState)[keyof typeof XenbusState];

export function parseState(text: string | undefined): XenbusStateValue | undefined {
  if (text === undefined || !/^\s*\d+\s*$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 0 && n <= 8 ? (n as XenbusStateValue) : undefined;
}

export function stateName(s: number): string {
  const e = Object.entries(XenbusState).find(([, v]) => v === s);
  return e ? e[0] : `state ${s}`;
}
