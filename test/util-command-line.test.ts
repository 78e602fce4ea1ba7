import { describe, expect, it } from 'vitest';
import { splitCommandLine } from '../src/util/command-line.js';

describe('splitCommandLine', () => {
  const split: [string, string[]][] = [
    ['node app.js', ['node', 'app.js']],
    ['  node   app.js  --port=8080 ', ['node', 'app.js', '--port=8080']],
    [`node 'my app.js'`, ['node', 'my app.js']],
    [`node "my app.js" "a\\"b"`, ['node', 'my app.js', 'a"b']],
    ['node my\\ app.js', ['node', 'my app.js']],
    [`echo ''`, ['echo', '']],
  ];
  for (const [line, argv] of split) it(`splits ${line}`, () => expect(splitCommandLine(line)).toEqual(argv));
  const shell = [
    'a && b',
    'a; b',
    'a | b',
    'a > out',
    'echo $HOME',
    'echo "$HOME"',
    'PORT=1 node app',
    'ls *.db',
    'echo `x`',
    "echo 'open",
    '',
  ];
  for (const line of shell)
    it(`leaves ${JSON.stringify(line)} to the shell`, () => expect(splitCommandLine(line)).toBeNull());
});
