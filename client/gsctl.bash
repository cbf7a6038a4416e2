# gsctl.bash — bash completion for gsctl.
#
#     source client/gsctl.bash      # or install into /etc/bash_completion.d/
#
# Completes options, commands, and the server and module names the daemon
# knows (it asks with `gsctl complete servers|modules`, on the socket given
# by -s or $GSD_SOCKET). Silent when the daemon cannot be reached.

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

    # The global options before the command, and the command itself.
    local i cmd="" cmdat=0 sock=()
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        -s | --socket) sock=(-s "${words[i + 1]}"); ((i++)) ;;
        -t | --timeout) ((i++)) ;;
        -*) ;;
        *) cmd=${words[i]}; cmdat=$i; break ;;
        esac
    done

    if [[ -z $cmd ]]; then
        case $prev in
        -s | --socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -t | --timeout) COMPREPLY=($(compgen -W "1000 5000 infinity" -- "$cur")); return ;;
        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-s --socket -t --timeout -p --pretty -m --msgpack
                -q --quiet -h --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$(gsctl complete commands 2>/dev/null)" -- "$cur"))
        fi
        return
    fi

    local arg=$((cword - cmdat)) # 1 for the command's first argument
    local servers="call cast send stop info state monitor"
    if [[ $cmd == start && $cur == --* ]]; then
        COMPREPLY=($(compgen -W "--link --timeout --restart --mailbox-limit" -- "$cur"))
    elif [[ $cmd == start && $prev == --restart ]]; then
        COMPREPLY=($(compgen -W "permanent transient temporary" -- "$cur"))
    elif [[ $arg == 1 && " $servers whereis " == *" $cmd "* ]]; then
        COMPREPLY=($(compgen -W "$(gsctl "${sock[@]}" complete servers 2>/dev/null)" -- "$cur"))
    elif [[ $arg == 1 && ($cmd == reload || $cmd == load) ]]; then
        COMPREPLY=($(compgen -W "$(gsctl "${sock[@]}" complete modules 2>/dev/null)" -- "$cur"))
    elif [[ $cmd == start ]]; then
        # The module, after any flags: the first word not a flag or a flag's value.
        local j seen=0
        for ((j = cmdat + 1; j < cword; j++)); do
            case ${words[j]} in
            --link) ;;
            --*=*) ;;
            --*) ((j++)) ;;
            *) seen=1 ;;
            esac
        done
        ((seen)) || COMPREPLY=($(compgen -W "$(gsctl "${sock[@]}" complete modules 2>/dev/null)" -- "$cur"))
    elif [[ $arg == 1 && $cmd == batch ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ $arg == 1 && $cmd == complete ]]; then
        COMPREPLY=($(compgen -W "commands servers modules" -- "$cur"))
    fi
}

complete -F _gsctl gsctl
