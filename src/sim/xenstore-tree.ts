// The node tree of the in-memory XenStore: paths, values, permissions and generations, with
// the checks cxenstored applies (xen.git tools/xenstored/core.c). No I/O, no
// watches: sim/xenstore.ts builds connections, watches and transactions on top.
import type { Access, Permission } from '../xen/xenstore';
import { ABS_PATH_MAX, PAYLOAD_MAX } from '../xen/xenstore-client/wire';

export class TreeError extends Error {
  constructor(readonly code: string, detail: string) {
    super(detail);
  }
}

export class Node {
  value = '';
  /** Bumped on every change to this node: value, permissions, or its set of children. */
  gen = 0;
  readonly children = new Map<string, Node>();
  constructor(public perms: Permission[]) {}

  clone(): Node {
    const n = new Node(this.perms);
    n.value = this.value;
    n.gen = this.gen;
    for (const [k, c] of this.children) n.children.set(k, c.clone());
    return n;
  }
}

/** Splits an absolute, canonical path into its components; EINVAL for anything else. */
export function components(path: string): string[] {
  if (path.length > ABS_PATH_MAX) throw new TreeError('EINVAL', `path longer than ${ABS_PATH_MAX}`);
  if (path === '/') return [];
  // cxenstored's is_valid_nodename: [A-Za-z0-9-/_@], no trailing or doubled slash.
  if (!/^(\/[A-Za-z0-9\-_@]+)+$/.test(path)) throw new TreeError('EINVAL', 'not a valid node name');
  return path.slice(1).split('/');
}

/** What domid may do on a node with these permissions (dom0 may do anything). */
export function access(perms: readonly Permission[], domid: number): Access {
  if (domid === 0) return 'b';
  const owner = perms[0];
  if (!owner) return 'n';
  if (owner.domid === domid) return 'b';
  const entry = perms.slice(1).find((p) => p.domid === domid);
  return entry ? entry.access : owner.access;
}

export const canRead = (a: Access): boolean => a === 'r' || a === 'b';
export const canWrite = (a: Access): boolean => a === 'w' || a === 'b';

/**
 * One tree. Every mutator takes the acting domid, checks permissions as cxenstored does, bumps
 * generations, and reports the paths that changed (for watches).
 */
export class Tree {
  private genCounter = 0;

  constructor(public root: Node = Tree.initialRoot()) {}

  static initialRoot(): Node {
    const root = new Node([{ domid: 0, access: 'n' }]);
    // cxenstored starts with /local/domain and /tool (empty, dom0-owned).
    const local = new Node(root.perms);
    const domain = new Node(root.perms);
    local.children.set('domain', domain);
    root.children.set('local', local);
    root.children.set('tool', new Node(root.perms));
    return root;
  }

  clone(): Tree {
    const t = new Tree(this.root.clone());
    t.genCounter = this.genCounter;
    return t;
  }

  /** A generation number larger than any other in either tree (shared across clones). */
  nextGen(floor: number): number {
    this.genCounter = Math.max(this.genCounter, floor) + 1;
    return this.genCounter;
  }
  get generation(): number {
    return this.genCounter;
  }

  lookup(path: string): Node | undefined {
    let n: Node | undefined = this.root;
    for (const c of components(path)) {
      n = n.children.get(c);
      if (!n) return undefined;
    }
    return n;
  }

  /** The node, readable by domid; ENOENT or EACCES otherwise. */
  readable(path: string, domid: number): Node {
    const n = this.lookup(path);
    if (!n) throw new TreeError('ENOENT', 'no such node');
    if (!canRead(access(n.perms, domid))) throw new TreeError('EACCES', 'permission denied');
    return n;
  }

  /**
   * Writes a value, creating missing parents. A new node inherits its parent's permissions,
   * owned by the creating domain when that is a guest (cxenstored construct_node).
   * Returns the paths created or changed.
   */
  write(path: string, value: string, domid: number, createOnly = false): string[] {
    if (path.length + 1 + value.length > PAYLOAD_MAX) throw new TreeError('E2BIG', 'value too large');
    const parts = components(path);
    if (parts.length === 0) throw new TreeError('EINVAL', 'cannot write the root');
    const existing = this.lookup(path);
    if (existing) {
      if (createOnly) return [];
      if (!canWrite(access(existing.perms, domid))) throw new TreeError('EACCES', 'permission denied');
      existing.value = value;
      existing.gen = this.nextGen(0);
      return [path];
    }
    let n = this.root;
    let i = 0;
    for (; i < parts.length; i++) {
      const next = n.children.get(parts[i]!);
      if (!next) break;
      n = next;
    }
    // n is the deepest existing ancestor: creating below it needs write access to it.
    if (!canWrite(access(n.perms, domid))) throw new TreeError('EACCES', 'permission denied');
    const changed: string[] = [];
    const gen = this.nextGen(0);
    n.gen = gen;
    let at = '/' + parts.slice(0, i).join('/');
    for (; i < parts.length; i++) {
      const perms = domid === 0 ? n.perms : [{ domid, access: n.perms[0]?.access ?? 'n' }, ...n.perms.slice(1)];
      const child = new Node(perms);
      child.gen = gen;
      n.children.set(parts[i]!, child);
      at = at === '/' ? `/${parts[i]}` : `${at}/${parts[i]}`;
      changed.push(at);
      n = child;
    }
    n.value = value;
    return changed;
  }

  /** Recursive removal. A missing node is fine if its parent exists (ENOENT otherwise). */
  /** Removes a node and everything below it; returns the removed paths, the node first. */
  rm(path: string, domid: number): string[] {
    const parts = components(path);
    if (parts.length === 0) throw new TreeError('EINVAL', 'cannot remove the root');
    const parentPath = parts.length === 1 ? '/' : '/' + parts.slice(0, -1).join('/');
    const parent = this.lookup(parentPath);
    const node = parent?.children.get(parts[parts.length - 1]!);
    if (!node) {
      if (!parent) throw new TreeError('ENOENT', 'no such node (nor its parent)');
      return [];
    }
    if (!canWrite(access(node.perms, domid))) throw new TreeError('EACCES', 'permission denied');
    parent!.children.delete(parts[parts.length - 1]!);
    parent!.gen = this.nextGen(0);
    // The node, then every node below it: each removed node fires the watches set exactly on
    // it (cxenstored's delnode_sub); a watch on a node that did not exist fires nothing.
    const removed = [path];
    const walk = (n: Node, at: string): void => {
      for (const [name, child] of n.children) {
        removed.push(`${at}/${name}`);
        walk(child, `${at}/${name}`);
      }
    };
    walk(node, path === '/' ? '' : path);
    return removed;
  }

  setPerms(path: string, perms: readonly Permission[], domid: number): string[] {
    if (perms.length === 0) throw new TreeError('EINVAL', 'empty permission list');
    const n = this.lookup(path);
    if (!n) throw new TreeError('ENOENT', 'no such node');
    // Only the owner (or dom0) may change permissions, and a guest may not give a node away.
    if (domid !== 0 && (n.perms[0]?.domid !== domid || perms[0]!.domid !== domid))
      throw new TreeError('EACCES', 'permission denied');
    n.perms = perms.map((p) => ({ domid: p.domid, access: p.access }));
    n.gen = this.nextGen(0);
    return [path];
  }
}
