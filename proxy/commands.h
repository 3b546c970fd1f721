/* proxy/commands.h
 * The petrel sub-commands that live in their own files; main() dispatches to them with the
 * arguments after the sub-command's name. Each returns the process exit status. */
#ifndef PT_PROXY_COMMANDS_H
#define PT_PROXY_COMMANDS_H

/* petrel inject [-f FILE|-] [--classic] [--image IMAGE] [--mesh-config NAME] (cmd_inject.c) */
int pt_cmd_inject(int argc, char **argv);

/* petrel wait [--timeout SECONDS] [--port PORT] [--period MS] (cmd_wait.c) */
int pt_cmd_wait(int argc, char **argv);

#endif
