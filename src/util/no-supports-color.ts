// Stand-in for debug's optional `supports-color` dependency inside the executable: the bundle
// resolves it here instead of failing (and printing a warning) at run time.
export default undefined;
