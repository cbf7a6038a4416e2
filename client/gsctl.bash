# gsctl.bash — bash completion for gsctl.
#
#     source client/gsctl.bash      # or install into /etc/bash_completion.d/
#
# Completes options (before or after the command, as gsctl takes them),
# commands, and the server and module names the daemon knows (it asks with
# `gsctl complete servers|modules`, on the socket given by -s or
# $GSD_SOCKET, or gsctl's default). Silent when the daemon cannot be reached.

_gsctl() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    # The command, how many arguments it has before the word being
    # completed, and the socket (-s) wherever it is: options may come
    # before or after the command; "--" ends them.
    local i w cmd="" nargs=0 opts=1 sock=()
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if ((opts)) && [[ $w == -- ]]; then
            opts=0
        elif ((opts)) && [[ $w == -[a-zA-Z]* || $w == --[a-zA-Z]* ]]; then
            case $w in
            -s | --socket) sock=(-s "${words[i + 1]}"); ((i++)) ;;
            --socket=*) sock=(-s "${w#--socket=}") ;;
            -t | --timeout | --restart | --mailbox-limit | --hibernate-after) ((i++)) ;;
            esac
        elif [[ -z $cmd ]]; then
            cmd=$w
        else
            ((nargs++))
        fi
    done

    case $prev in
    -s | --socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -t | --timeout) COMPREPLY=($(compgen -W "1000 5000 infinity" -- "$cur")); return ;;
    --restart) [[ $cmd == start ]] && COMPREPLY=($(compgen -W "permanent transient temporary" -- "$cur")); return ;;
    --mailbox-limit | --hibernate-after) return ;;
    esac

    if ((opts)) && [[ $cur == -* ]]; then
        local o="-s --socket -t --timeout -p --pretty -m --msgpack -q --quiet -h --help --"
        [[ $cmd == start ]] && o="$o --link --restart --mailbox-limit --hibernate-after --isolate"
        COMPREPLY=($(compgen -W "$o" -- "$cur"))
        return
    fi
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$(gsctl complete commands 2>/dev/null)" -- "$cur"))
        return
    fi

    local arg=$((nargs + 1)) # 1 for the command's first argument
    local servers="call cast send stop info state monitor restart suspend resume"
    if [[ $arg == 1 && " $servers whereis " == *" $cmd "* ]]; then
        COMPREPLY=($(compgen -W "$(gsctl "${sock[@]}" complete servers 2>/dev/null)" -- "$cur"))
    elif [[ $arg == 1 && ($cmd == reload || $cmd == load || $cmd == start) ]]; then
        COMPREPLY=($(compgen -W "$(gsctl "${sock[@]}" complete modules 2>/dev/null)" -- "$cur"))
    elif [[ $arg == 1 && $cmd == batch ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ $arg == 1 && $cmd == complete ]]; then
        COMPREPLY=($(compgen -W "commands servers modules" -- "$cur"))
    fi
}

complete -F _gsctl gsctl
