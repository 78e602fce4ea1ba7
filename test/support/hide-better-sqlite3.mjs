// Preload (`node --import ./test/support/hide-better-sqlite3.mjs ...`) that makes the process
// behave as if better-sqlite3 were not installed, for both ESM imports and require(): what a
// read-only `npm install ltxvfs` looks like, since better-sqlite3 is an optional peer dependency.
import Module, { register } from 'node:module';

const hidden = (specifier) => specifier === 'better-sqlite3' || specifier.startsWith('better-sqlite3/');

register(
  `data:text/javascript,${encodeURIComponent(`
    export async function resolve(specifier, context, next) {
      if (specifier === 'better-sqlite3' || specifier.startsWith('better-sqlite3/')) {
        const err = new Error("Cannot find package 'better-sqlite3' (hidden by the test)");
        err.code = 'ERR_MODULE_NOT_FOUND';
        throw err;
      }
      return next(specifier, context);
    }`)}`,
);

const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (hidden(request)) {
    const err = new Error("Cannot find module 'better-sqlite3' (hidden by the test)");
    err.code = 'MODULE_NOT_FOUND';
    throw err;
  }
  return resolveFilename.call(this, request, ...rest);
};
