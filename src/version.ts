// The version every role reports (set by build.mjs; source-tree runs say 0.0.0-dev).
declare const AFSFILE_VERSION: string | undefined;
export const VERSION: string = typeof AFSFILE_VERSION === 'string' ? AFSFILE_VERSION : '0.0.0-dev';
