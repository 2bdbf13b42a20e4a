/* completion.c — `omsctl completion bash`: a completion script built from
 * the command table and each command's --help (so it never goes stale). */
#include <string.h>

#include "ctl.h"

const oms_cli_command *ctl_commands(void);

int cmd_completion(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "bash") != 0) {
        if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            printf("usage: omsctl completion bash\n\n"
                   "Print a bash completion script. Load it with\n"
                   "  source <(omsctl completion bash)\n"
                   "or save it under /etc/bash_completion.d/omsctl.\n");
            return OMS_EXIT_OK;
        }
        return oms_cli_usage_error("omsctl completion", "the only shell is bash: "
                                                        "'omsctl completion bash'");
    }
    printf("# bash completion for omsctl; source <(omsctl completion bash)\n"
           "_omsctl() {\n"
           "    local cur=${COMP_WORDS[COMP_CWORD]}\n"
           "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
           "        COMPREPLY=($(compgen -W \"");
    for (const oms_cli_command *c = ctl_commands(); c->name; c++)
        printf("%s%s", c == ctl_commands() ? "" : " ", c->name);
    printf(" --help\" -- \"$cur\"))\n"
           "        return\n"
           "    fi\n"
           "    local cmd=${COMP_WORDS[1]}\n"
           "    case \"$cmd\" in\n"
           "    topics) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W \"create list\" -- "
           "\"$cur\")) && return ;;\n"
           "    schemas) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W \"list show "
           "fingerprint check register compat\" -- \"$cur\")) && return ;;\n"
           "    users) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W \"online get\" -- "
           "\"$cur\")) && return ;;\n"
           "    notify) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W \"order-created "
           "order-status inventory-alert\" -- \"$cur\")) && return ;;\n"
           "    projections) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W \"status migrate "
           "rebuild\" -- \"$cur\")) && return ;;\n"
           "    alerts) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W \"status test\" -- "
           "\"$cur\")) && return ;;\n"
           "    completion) COMPREPLY=($(compgen -W \"bash\" -- \"$cur\")); return ;;\n"
           "    esac\n"
           "    if [[ $cur == -* ]]; then\n"
           "        local sub=\"\"\n"
           "        [ \"$cmd\" = notify ] && [ \"$COMP_CWORD\" -gt 2 ] && sub=${COMP_WORDS[2]}\n"
           "        local flags=$(omsctl $cmd $sub --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' "
           "| sort -u)\n"
           "        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n"
           "    fi\n"
           "}\n"
           "complete -F _omsctl omsctl\n");
    return OMS_EXIT_OK;
}
