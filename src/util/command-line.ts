/**
 * Splits a command line into argv the way a POSIX shell would for a simple command (words,
 * single and double quotes, backslash escapes), so `--exec` can run the application itself
 * rather than a shell that may not pass signals on (dash forks). Returns null when the line
 * needs a shell: operators, redirections, expansions, globs, variable assignments.
 */
export function splitCommandLine(line: string): string[] | null {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
      continue;
    }
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return null;
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      for (;;) {
        const d = line[j];
        if (d === undefined) return null;
        if (d === '"') break;
        if (d === '$' || d === '`') return null;
        if (d === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1] as string)) {
          word += line[j + 1];
          j += 2;
          continue;
        }
        word += d;
        j++;
      }
      inWord = true;
      i = j + 1;
      continue;
    }
    if (c === '\\') {
      const next = line[i + 1];
      if (next === undefined || next === '\n') return null;
      word += next;
      inWord = true;
      i += 2;
      continue;
    }
    if ('|&;<>()$`*?[]{}~#!\n\r'.includes(c)) return null;
    if (c === '=' && !inWord) return null;
    if (c === '=' && words.length === 0 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) return null; // VAR=value cmd
    word += c;
    inWord = true;
    i++;
  }
  if (inWord) words.push(word);
  return words.length > 0 ? words : null;
}
