/**
 * `dtk completion bash|zsh|fish`: scripts generated from the command tree itself, so they stay
 * in step with the commands.
 *
 * @module
 */
import { Argument, type Command } from "commander";
import type { CliContext } from "./context.ts";

interface Node {
  path: string[];
  commands: { name: string; description: string }[];
  options: { flags: string[]; description: string }[];
}

/** Every command path of the tree with its subcommands and options. */
export function commandTree(root: Command): Node[] {
  const nodes: Node[] = [];
  const walk = (command: Command, path: string[], inherited: Node["options"]) => {
    const own = command.options.map((o) => ({
      flags: [o.short, o.long].filter((f): f is string => f !== undefined),
      description: o.description,
    }));
    const options = [...inherited, ...own, { flags: ["-h", "--help"], description: "Show help" }];
    const subs = command.commands.filter((c) => !(c as unknown as { _hidden: boolean })._hidden);
    nodes.push({
      path,
      commands: subs.map((c) => ({ name: c.name(), description: c.description() })),
      options,
    });
    for (const sub of subs) {
      walk(sub as unknown as Command, [...path, sub.name()], path.length === 0 ? own : inherited);
    }
  };
  walk(root, [], []);
  return nodes;
}

/** What may follow a command path: its subcommands, then its options. */
function words(node: Node): string[] {
  return [...node.commands.map((c) => c.name), ...node.options.flatMap((o) => o.flags)];
}

/** The `case` arms, shared by bash and zsh, that follow the words typed so far to a path. */
function pathArms(tree: Node[]): string {
  return tree.map((n) => `      "${n.path.join(" ")}") path="$candidate" ;;`).join("\n");
}

export function bashScript(root: Command): string {
  const tree = commandTree(root);
  const cases = tree.map((node) =>
    `    "${node.path.join(" ")}") opts="${words(node).join(" ")}" ;;`
  )
    .join("\n");
  return `# bash completion for dtk: source <(dtk completion bash)
_dtk_complete() {
  local cur path word opts i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in -*) continue ;; esac
    if [ -z "$path" ]; then candidate="$word"; else candidate="$path $word"; fi
    case "$candidate" in
${pathArms(tree)}
    esac
  done
  case "$path" in
${cases}
    *) opts="" ;;
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o default -F _dtk_complete dtk
`;
}

export function zshScript(root: Command): string {
  const tree = commandTree(root);
  const cases = tree.map((node) =>
    `    "${node.path.join(" ")}") opts=(${words(node).map((w) => `'${w}'`).join(" ")}) ;;`
  ).join("\n");
  return `#compdef dtk
# zsh completion for dtk: dtk completion zsh > "\${fpath[1]}/_dtk"
_dtk() {
  local -a opts
  local path="" candidate word
  local i
  for ((i = 2; i < CURRENT; i++)); do
    word="\${words[i]}"
    [[ "$word" == -* ]] && continue
    if [[ -z "$path" ]]; then candidate="$word"; else candidate="$path $word"; fi
    case "$candidate" in
${pathArms(tree)}
    esac
  done
  case "$path" in
${cases}
    *) opts=() ;;
  esac
  compadd -a opts
}
compdef _dtk dtk
`;
}

export function fishScript(root: Command): string {
  const lines = ["# fish completion for dtk: dtk completion fish | source", "complete -c dtk -f"];
  for (const node of commandTree(root)) {
    const condition = node.path.length === 0
      ? "__fish_use_subcommand"
      : `__fish_seen_subcommand_from ${node.path[node.path.length - 1]}`;
    for (const command of node.commands) {
      lines.push(
        `complete -c dtk -n '${condition}' -a '${command.name}' -d '${
          command.description.replaceAll("'", "\\'")
        }'`,
      );
    }
    if (node.path.length === 0) {
      for (const option of node.options) {
        const long = option.flags.find((f) => f.startsWith("--"))?.slice(2);
        const short = option.flags.find((f) => /^-\w$/.test(f))?.slice(1);
        lines.push(
          `complete -c dtk${long ? ` -l ${long}` : ""}${short ? ` -s ${short}` : ""} -d '${
            option.description.replaceAll("'", "\\'")
          }'`,
        );
      }
    }
  }
  return lines.join("\n") + "\n";
}

export function registerCompletionCommand(program: Command, ctx: CliContext): void {
  program
    .command("completion")
    .description("Print a shell completion script")
    .addArgument(
      new Argument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"] as const),
    )
    .addHelpText(
      "after",
      "\nExamples:\n  source <(dtk completion bash)\n  dtk completion fish | source",
    )
    .action((shell: string) => {
      const root = program;
      const script = shell === "bash"
        ? bashScript(root)
        : shell === "zsh"
        ? zshScript(root)
        : fishScript(root);
      ctx.out.data(script);
    });
}
