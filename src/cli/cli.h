/* Shared helpers of the gkd program's subcommands. Each subcommand lives in
 * src/cli/cmd_NAME.c as `int cmd_NAME(int argc, char **argv)`, where argv[0]
 * is the subcommand name; it returns the process exit status (0 ok, 1 error,
 * 2 usage) after printing one clear line for an error. */
#ifndef GKD_CLI_H
#define GKD_CLI_H

#endif
