# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_paratime_node_global_optspecs
    string join \n config= unsafe-debug sandbox-socket= bundles-group= h/help V/version
end

function __fish_paratime_node_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_paratime_node_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_paratime_node_using_subcommand
    set -l cmd (__fish_paratime_node_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c paratime-node -n "__fish_paratime_node_needs_command" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_needs_command" -l sandbox-socket -d 'Use the sandbox launcher listening on this socket (the paratime-node-sandbox unit) instead of starting one as a child' -r -F
complete -c paratime-node -n "__fish_paratime_node_needs_command" -l bundles-group -d 'Give the exploded-bundles directory to this group (setgid, group-readable): the group of the sandbox launcher\'s user when it runs as its own user (the shipped units use `paratime-sandbox`, the node\'s primary group there)' -r
complete -c paratime-node -n "__fish_paratime_node_needs_command" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -s V -l version -d 'Print version'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "config" -d 'Check a config file'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "identity" -d 'Node keys'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "bundle" -d 'ParaTime bundles (.orc)'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "control" -d 'Talk to a running node'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "runtime" -d 'Run a bundle in the real sandbox, outside any network'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "sandbox-launcher" -d 'The sandbox launcher (started by the node or by systemd)'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "sandbox-probe" -d 'Trial program run inside the sandbox at start-up'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "confinement-probe" -d 'Applies the node\'s self-confinement for --config, then tries to write each PATH and to execute a program; prints what happened as JSON (used by the Landlock test)'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "doctor" -d 'Check this host and config for everything the node needs; one line per check'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "genesis" -d 'Genesis documents'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "entity" -d 'The operator\'s entity (kept off the node host)'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "account" -d 'Staking accounts'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "unsafe-reset" -d 'UNSAFE: remove the node\'s consensus state and runtime history (keys, bundles and logs stay; the runtimes\' state trees too unless --preserve.mkvs_database=false). The node must be stopped; it syncs again at its next start'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "network" -d 'The network\'s parameters (stake requirements)'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "tx" -d 'ParaTime transactions'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "query" -d 'Query a ParaTime\'s finalized state, e.g. `query --method kv.Get --body \'{"key":"k"}\'`'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "state" -d 'Read a key of a ParaTime\'s finalized state with a proof, or verify such a proof'
complete -c paratime-node -n "__fish_paratime_node_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and not __fish_seen_subcommand_from check help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and not __fish_seen_subcommand_from check help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'List every problem of a config file, including the node\'s start-up checks of the bundles it names; exit 1 if any is an error'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and __fish_seen_subcommand_from check" -l unchecked-file -d 'A `runtime.paths` entry not to open (a stand-in for a file that exists only on the host, as in a Nix build); the node verifies it at start. Repeatable' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and __fish_seen_subcommand_from check" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and __fish_seen_subcommand_from check" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "check" -d 'List every problem of a config file, including the node\'s start-up checks of the bundles it names; exit 1 if any is an error'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and not __fish_seen_subcommand_from init show show-address help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and not __fish_seen_subcommand_from init show show-address help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and not __fish_seen_subcommand_from init show show-address help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and not __fish_seen_subcommand_from init show show-address help" -f -a "init" -d 'Create the node\'s keys in DATADIR (0700); never overwrites'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and not __fish_seen_subcommand_from init show show-address help" -f -a "show" -d 'Show the node\'s public keys'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and not __fish_seen_subcommand_from init show show-address help" -f -a "show-address" -d 'Print the running node\'s staking address (`oasis1…`), from its control status'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and not __fish_seen_subcommand_from init show show-address help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from init" -l datadir -d 'The node\'s data directory' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from init" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from init" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from show" -l datadir -d 'The node\'s data directory' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from show" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from show" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from show-address" -s a -l address -d 'Control socket address' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from show-address" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from show-address" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from show-address" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from help" -f -a "init" -d 'Create the node\'s keys in DATADIR (0700); never overwrites'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the node\'s public keys'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from help" -f -a "show-address" -d 'Print the running node\'s staking address (`oasis1…`), from its control status'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand identity; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and not __fish_seen_subcommand_from build inspect verify help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and not __fish_seen_subcommand_from build inspect verify help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and not __fish_seen_subcommand_from build inspect verify help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and not __fish_seen_subcommand_from build inspect verify help" -f -a "build" -d 'Build an .orc bundle from an ELF executable'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and not __fish_seen_subcommand_from build inspect verify help" -f -a "inspect" -d 'Print a bundle\'s manifest as JSON (after verifying it)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and not __fish_seen_subcommand_from build inspect verify help" -f -a "verify" -d 'Verify a bundle: structure and every digest'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and not __fish_seen_subcommand_from build inspect verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from build" -l executable -d 'The ParaTime executable' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from build" -l name -d 'ParaTime name' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from build" -l runtime-id -d 'Runtime ID, 64 hex characters' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from build" -l version -d 'Version, MAJOR.MINOR.PATCH (must equal what the runtime reports)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from build" -l output -d 'Output file' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from build" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from build" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from build" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from inspect" -l max-bundle-size -d 'Size limit' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from inspect" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from inspect" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from verify" -l max-bundle-size -d 'Size limit' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from verify" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from verify" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from help" -f -a "build" -d 'Build an .orc bundle from an ELF executable'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Print a bundle\'s manifest as JSON (after verifying it)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Verify a bundle: structure and every digest'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand bundle; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -f -a "status" -d 'Print the node\'s status as JSON'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -f -a "is-synced" -d 'Exit 0 when the node completed initial syncing, 1 otherwise'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -f -a "wait-sync" -d 'Wait (without a time limit) until the node completed initial syncing; silent, exit 0'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -f -a "shutdown" -d 'Ask the node to deregister and shut down (it stops once the registry no longer lists it)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -f -a "runtime-stats" -d 'A runtime\'s rounds and each committee member\'s participation in the current epoch'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -f -a "clear-deregister" -d 'Forget a deregistration that `control shutdown` asked for and that did not complete (the node then registers again at its next start). Offline: the node must be stopped'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and not __fish_seen_subcommand_from status is-synced wait-sync shutdown runtime-stats clear-deregister help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from status" -s a -l address -d 'Control socket address' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from status" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from status" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from is-synced" -s a -l address -d 'Control socket address' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from is-synced" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from is-synced" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from is-synced" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from wait-sync" -s a -l address -d 'Control socket address' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from wait-sync" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from wait-sync" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from wait-sync" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from shutdown" -s a -l address -d 'Control socket address' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from shutdown" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from shutdown" -s w -l wait -d 'Return only once the node has stopped'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from shutdown" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from shutdown" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from runtime-stats" -s a -l address -d 'Control socket address' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from runtime-stats" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from runtime-stats" -l json -d 'Print JSON'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from runtime-stats" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from runtime-stats" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from clear-deregister" -l datadir -d 'The node\'s data directory' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from clear-deregister" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from clear-deregister" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from clear-deregister" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from help" -f -a "status" -d 'Print the node\'s status as JSON'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from help" -f -a "is-synced" -d 'Exit 0 when the node completed initial syncing, 1 otherwise'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from help" -f -a "wait-sync" -d 'Wait (without a time limit) until the node completed initial syncing; silent, exit 0'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from help" -f -a "shutdown" -d 'Ask the node to deregister and shut down (it stops once the registry no longer lists it)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from help" -f -a "runtime-stats" -d 'A runtime\'s rounds and each committee member\'s participation in the current epoch'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from help" -f -a "clear-deregister" -d 'Forget a deregistration that `control shutdown` asked for and that did not complete (the node then registers again at its next start). Offline: the node must be stopped'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand control; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and not __fish_seen_subcommand_from exec help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and not __fish_seen_subcommand_from exec help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and not __fish_seen_subcommand_from exec help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and not __fish_seen_subcommand_from exec help" -f -a "exec" -d 'Execute transactions and queries through a bundle in the sandbox'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and not __fish_seen_subcommand_from exec help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l bundle -d 'The bundle to run' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l tx -d 'A transaction, JSON: {"method":"kv.Put","body":{...}} (repeatable; one batch, in order)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l query -d 'A query, JSON: {"method":"kv.Get","body":{...}} (repeatable; run after the batch)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l state -d 'State file kept between invocations (created when missing)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l runtime-config -d 'Local configuration for the runtime, JSON' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l sandbox-binary -d 'bubblewrap binary' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l max-bundle-size -d 'Size limit of the bundle' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from exec" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from help" -f -a "exec" -d 'Execute transactions and queries through a bundle in the sandbox'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand runtime; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l bundles-dir -d 'Directory of exploded bundles (the only place bundles are taken from)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l sandbox-binary -d 'bubblewrap binary' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l listen-fd -d 'Serve on an inherited listening socket (without this and --listen: the socket passed by systemd, FileDescriptorName=sandbox)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l listen -d 'Bind and serve on this path' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l log-format -d 'Log format: logfmt, JSON or text' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l log-level -d 'Default log level' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l unconfined -d 'UNSAFE: start runtimes without a sandbox'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-launcher" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-probe" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-probe" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand sandbox-probe" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand confinement-probe" -l try-write -d 'Files to try to create' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand confinement-probe" -l try-exec -d 'A program to try to execute' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand confinement-probe" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand confinement-probe" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand confinement-probe" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand doctor" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand doctor" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and not __fish_seen_subcommand_from init check help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and not __fish_seen_subcommand_from init check help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and not __fish_seen_subcommand_from init check help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and not __fish_seen_subcommand_from init check help" -f -a "init" -d 'Create a genesis document: the validators, funded and staked entities, one ParaTime'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and not __fish_seen_subcommand_from init check help" -f -a "check" -d 'Check a genesis document and print its chain context'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and not __fish_seen_subcommand_from init check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l output -d 'Output file (genesis.json)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l chain-id -d 'Chain name' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l validator-datadir -d 'A validator node\'s data dir (its consensus_pub.pem is the validator key); repeat for each validator (BFT: 4 tolerate one failure). The first entity\'s escrow backs them, split evenly' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l entity-dir -d 'An entity directory (entity.pem, entity.json) to register at genesis; repeatable' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l balance -d 'General balance of each entity' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l escrow -d 'Escrow (stake) of each entity' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l bundle -d 'The ParaTime\'s bundle: its runtime ID is registered, with its version and manifest hash as the deployment valid from epoch 0 (what nodes configured by id download)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l group-size -d 'Executor committee size' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l epoch-interval -d 'Blocks per epoch' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l block-interval-ms -d 'Milliseconds between blocks, at least (a proposer waits up to one more interval for the commitments of a ParaTime round in progress)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l consensus-pubsub -d 'How validators spread proposals and votes: `gossipsub` (relayed; sentry nodes work) or `broadcast` (sent directly to every connected peer, never relayed: every validator must list every other one in `consensus.p2p.persistent_peers`; less CPU per block). Network-wide' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from check" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from check" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from help" -f -a "init" -d 'Create a genesis document: the validators, funded and staked entities, one ParaTime'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from help" -f -a "check" -d 'Check a genesis document and print its chain context'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand genesis; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and not __fish_seen_subcommand_from init add-node show register help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and not __fish_seen_subcommand_from init add-node show register help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and not __fish_seen_subcommand_from init add-node show register help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and not __fish_seen_subcommand_from init add-node show register help" -f -a "init" -d 'Create an entity key (entity.pem, 0600) and entity.json in DIR; never overwrites'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and not __fish_seen_subcommand_from init add-node show register help" -f -a "add-node" -d 'List a node in the entity\'s `nodes` (by ID, or from a node\'s data dir)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and not __fish_seen_subcommand_from init add-node show register help" -f -a "show" -d 'Show the entity\'s ID and staking address'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and not __fish_seen_subcommand_from init add-node show register help" -f -a "register" -d 'Register (or update) the entity through a node'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and not __fish_seen_subcommand_from init add-node show register help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from init" -l dir -d 'Entity directory (kept off the node host)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from init" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from init" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from add-node" -l dir -d 'Entity directory' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from add-node" -l node-id -d 'The node ID (base64)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from add-node" -l node-datadir -d 'Read the node ID from this node data dir (identity_pub.pem)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from add-node" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from add-node" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from add-node" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from show" -l dir -d 'Entity directory' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from show" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from show" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from register" -l dir -d 'Entity directory' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from register" -s a -l address -d 'A node\'s control socket' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from register" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from register" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from register" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from help" -f -a "init" -d 'Create an entity key (entity.pem, 0600) and entity.json in DIR; never overwrites'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from help" -f -a "add-node" -d 'List a node in the entity\'s `nodes` (by ID, or from a node\'s data dir)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the entity\'s ID and staking address'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from help" -f -a "register" -d 'Register (or update) the entity through a node'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand entity; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -f -a "show" -d 'Show an account\'s balance, nonce and escrow (its delegations with --show-delegations)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -f -a "transfer" -d 'Transfer tokens'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -f -a "escrow" -d 'Delegate tokens to an escrow account (stake)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -f -a "reclaim" -d 'Reclaim escrowed tokens (they debond)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -f -a "allow" -d 'Let --to withdraw up to --amount more from the signer\'s account (with --negative: that much less, down to nothing)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -f -a "withdraw" -d 'Withdraw --amount from the account --to, within the allowance it granted the signer'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and not __fish_seen_subcommand_from show transfer escrow reclaim allow withdraw help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from show" -s a -l address -d 'A node\'s control socket (default: $PARATIME_NODE_ADDRESS, else ./internal.sock, else /run/paratime-node/internal.sock)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from show" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from show" -l show-delegations -d 'List the account\'s active and debonding delegations (as the Oasis CLI)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from show" -l json -d 'Print JSON'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from show" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from transfer" -l signer -d 'The signer\'s private key PEM (e.g. entity/entity.pem), exactly 0600' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from transfer" -l to -d 'Counterparty: recipient (transfer), escrow account (escrow, reclaim), beneficiary (allow), or the account that granted the allowance (withdraw)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from transfer" -l amount -d 'Amount in base units' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from transfer" -s a -l address -d 'A node\'s control socket' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from transfer" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from transfer" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from transfer" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from escrow" -l signer -d 'The signer\'s private key PEM (e.g. entity/entity.pem), exactly 0600' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from escrow" -l to -d 'Counterparty: recipient (transfer), escrow account (escrow, reclaim), beneficiary (allow), or the account that granted the allowance (withdraw)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from escrow" -l amount -d 'Amount in base units' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from escrow" -s a -l address -d 'A node\'s control socket' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from escrow" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from escrow" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from escrow" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from reclaim" -l signer -d 'The signer\'s private key PEM (e.g. entity/entity.pem), exactly 0600' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from reclaim" -l to -d 'Counterparty: recipient (transfer), escrow account (escrow, reclaim), beneficiary (allow), or the account that granted the allowance (withdraw)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from reclaim" -l amount -d 'Amount in base units' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from reclaim" -s a -l address -d 'A node\'s control socket' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from reclaim" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from reclaim" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from reclaim" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from allow" -l signer -d 'The signer\'s private key PEM (e.g. entity/entity.pem), exactly 0600' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from allow" -l to -d 'Counterparty: recipient (transfer), escrow account (escrow, reclaim), beneficiary (allow), or the account that granted the allowance (withdraw)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from allow" -l amount -d 'Amount in base units' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from allow" -s a -l address -d 'A node\'s control socket' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from allow" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from allow" -l negative -d 'Lower the allowance instead of raising it'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from allow" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from allow" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from withdraw" -l signer -d 'The signer\'s private key PEM (e.g. entity/entity.pem), exactly 0600' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from withdraw" -l to -d 'Counterparty: recipient (transfer), escrow account (escrow, reclaim), beneficiary (allow), or the account that granted the allowance (withdraw)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from withdraw" -l amount -d 'Amount in base units' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from withdraw" -s a -l address -d 'A node\'s control socket' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from withdraw" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from withdraw" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from withdraw" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show an account\'s balance, nonce and escrow (its delegations with --show-delegations)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "transfer" -d 'Transfer tokens'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "escrow" -d 'Delegate tokens to an escrow account (stake)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "reclaim" -d 'Reclaim escrowed tokens (they debond)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "allow" -d 'Let --to withdraw up to --amount more from the signer\'s account (with --negative: that much less, down to nothing)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "withdraw" -d 'Withdraw --amount from the account --to, within the allowance it granted the signer'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand unsafe-reset" -l datadir -d 'The node\'s data directory' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand unsafe-reset" -l preserve.local_storage -d 'Keep the runtimes\' local storage (`runtimes/*/worker-local-storage.*.db`)' -r -f -a "true\t''
false\t''"
complete -c paratime-node -n "__fish_paratime_node_using_subcommand unsafe-reset" -l preserve.mkvs_database -d 'Keep the runtimes\' state trees (`runtimes/*/mkvs_storage.*.db`): a node that keeps them replays or state-syncs the rounds its reset history no longer has' -r -f -a "true\t''
false\t''"
complete -c paratime-node -n "__fish_paratime_node_using_subcommand unsafe-reset" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand unsafe-reset" -s n -l dry_run -d 'Only print what would be removed'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand unsafe-reset" -l force -d 'Reset a directory that does not look like a node\'s data directory'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand unsafe-reset" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand unsafe-reset" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and not __fish_seen_subcommand_from show help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and not __fish_seen_subcommand_from show help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and not __fish_seen_subcommand_from show help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and not __fish_seen_subcommand_from show help" -f -a "show" -d 'Show the network\'s parameters: stake thresholds, epochs, ParaTimes and their committees'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and not __fish_seen_subcommand_from show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and __fish_seen_subcommand_from show" -s a -l address -d 'A node\'s control socket (default: $PARATIME_NODE_ADDRESS, else ./internal.sock, else /run/paratime-node/internal.sock)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and __fish_seen_subcommand_from show" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and __fish_seen_subcommand_from show" -l json -d 'Print JSON'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and __fish_seen_subcommand_from show" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the network\'s parameters: stake thresholds, epochs, ParaTimes and their committees'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand network; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and not __fish_seen_subcommand_from submit help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and not __fish_seen_subcommand_from submit help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and not __fish_seen_subcommand_from submit help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and not __fish_seen_subcommand_from submit help" -f -a "submit" -d 'Submit a ParaTime transaction and wait until its round is finalized; prints the result'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and not __fish_seen_subcommand_from submit help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -s a -l address -d 'A client or compute node\'s control socket (default: $PARATIME_NODE_ADDRESS, else ./internal.sock, else /run/paratime-node/internal.sock)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -l runtime -d 'Runtime ID (hex)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -l method -d 'Method, e.g. `kv.Put`' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -l body -d 'Arguments as JSON, e.g. \'{"key":"hello","value":"world"}\'' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -l timeout -d 'How long to wait for finalization (with --no-wait: for check-tx)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -l no-wait -d 'Return once check-tx accepted the transaction and it was sent to the committee; prints `{hash}` (oasis\'s SubmitTxNoWait)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from submit" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from help" -f -a "submit" -d 'Submit a ParaTime transaction and wait until its round is finalized; prints the result'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand tx; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand query" -s a -l address -d 'A client or compute node\'s control socket (default: $PARATIME_NODE_ADDRESS, else ./internal.sock, else /run/paratime-node/internal.sock)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand query" -l runtime -d 'Runtime ID (hex)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand query" -l method -d 'Method, e.g. `kv.Put`' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand query" -l body -d 'Arguments as JSON, e.g. \'{"key":"hello","value":"world"}\'' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand query" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand query" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand query" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and not __fish_seen_subcommand_from get verify help" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and not __fish_seen_subcommand_from get verify help" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and not __fish_seen_subcommand_from get verify help" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and not __fish_seen_subcommand_from get verify help" -f -a "get" -d 'Read a key of the finalized state with a proof; the proof is checked against the state root the node reports and, with --root, against a root you trust'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and not __fish_seen_subcommand_from get verify help" -f -a "verify" -d 'Verify a proof offline: prints the proven value; exit 1 if the proof does not hold'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and not __fish_seen_subcommand_from get verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from get" -s a -l address -d 'Control socket (default as for `query`)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from get" -l runtime -d 'Runtime ID (hex)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from get" -l key -d 'The key (text, e.g. a kvstore key, or hex with --hex)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from get" -l root -d 'A state root (hex) obtained elsewhere, e.g. from another node\'s `control status`' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from get" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from get" -l hex -d 'The key is hex'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from get" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from verify" -l root -d 'The state root (hex) the proof must lead to' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from verify" -l key -d 'The key (text, e.g. a kvstore key, or hex with --hex)' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from verify" -l proof -d 'The proof (base64), as `state get` prints it' -r
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from verify" -l config -d 'Run the node with this config.yml (oasis-node format)' -r -F
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from verify" -l hex -d 'The key is hex'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from verify" -l unsafe-debug -d 'UNSAFE, development only: allow running as root and the unconfined provisioner'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from help" -f -a "get" -d 'Read a key of the finalized state with a proof; the proof is checked against the state root the node reports and, with --root, against a root you trust'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Verify a proof offline: prints the proven value; exit 1 if the proof does not hold'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand state; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "config" -d 'Check a config file'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "identity" -d 'Node keys'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "bundle" -d 'ParaTime bundles (.orc)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "control" -d 'Talk to a running node'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "runtime" -d 'Run a bundle in the real sandbox, outside any network'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "sandbox-launcher" -d 'The sandbox launcher (started by the node or by systemd)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "sandbox-probe" -d 'Trial program run inside the sandbox at start-up'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "confinement-probe" -d 'Applies the node\'s self-confinement for --config, then tries to write each PATH and to execute a program; prints what happened as JSON (used by the Landlock test)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "doctor" -d 'Check this host and config for everything the node needs; one line per check'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "genesis" -d 'Genesis documents'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "entity" -d 'The operator\'s entity (kept off the node host)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "account" -d 'Staking accounts'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "unsafe-reset" -d 'UNSAFE: remove the node\'s consensus state and runtime history (keys, bundles and logs stay; the runtimes\' state trees too unless --preserve.mkvs_database=false). The node must be stopped; it syncs again at its next start'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "network" -d 'The network\'s parameters (stake requirements)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "tx" -d 'ParaTime transactions'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "query" -d 'Query a ParaTime\'s finalized state, e.g. `query --method kv.Get --body \'{"key":"k"}\'`'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "state" -d 'Read a key of a ParaTime\'s finalized state with a proof, or verify such a proof'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and not __fish_seen_subcommand_from config identity bundle control runtime sandbox-launcher sandbox-probe confinement-probe doctor genesis entity account unsafe-reset network tx query state help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "check" -d 'List every problem of a config file, including the node\'s start-up checks of the bundles it names; exit 1 if any is an error'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from identity" -f -a "init" -d 'Create the node\'s keys in DATADIR (0700); never overwrites'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from identity" -f -a "show" -d 'Show the node\'s public keys'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from identity" -f -a "show-address" -d 'Print the running node\'s staking address (`oasis1…`), from its control status'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from bundle" -f -a "build" -d 'Build an .orc bundle from an ELF executable'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from bundle" -f -a "inspect" -d 'Print a bundle\'s manifest as JSON (after verifying it)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from bundle" -f -a "verify" -d 'Verify a bundle: structure and every digest'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from control" -f -a "status" -d 'Print the node\'s status as JSON'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from control" -f -a "is-synced" -d 'Exit 0 when the node completed initial syncing, 1 otherwise'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from control" -f -a "wait-sync" -d 'Wait (without a time limit) until the node completed initial syncing; silent, exit 0'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from control" -f -a "shutdown" -d 'Ask the node to deregister and shut down (it stops once the registry no longer lists it)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from control" -f -a "runtime-stats" -d 'A runtime\'s rounds and each committee member\'s participation in the current epoch'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from control" -f -a "clear-deregister" -d 'Forget a deregistration that `control shutdown` asked for and that did not complete (the node then registers again at its next start). Offline: the node must be stopped'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from runtime" -f -a "exec" -d 'Execute transactions and queries through a bundle in the sandbox'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from genesis" -f -a "init" -d 'Create a genesis document: the validators, funded and staked entities, one ParaTime'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from genesis" -f -a "check" -d 'Check a genesis document and print its chain context'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from entity" -f -a "init" -d 'Create an entity key (entity.pem, 0600) and entity.json in DIR; never overwrites'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from entity" -f -a "add-node" -d 'List a node in the entity\'s `nodes` (by ID, or from a node\'s data dir)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from entity" -f -a "show" -d 'Show the entity\'s ID and staking address'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from entity" -f -a "register" -d 'Register (or update) the entity through a node'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "show" -d 'Show an account\'s balance, nonce and escrow (its delegations with --show-delegations)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "transfer" -d 'Transfer tokens'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "escrow" -d 'Delegate tokens to an escrow account (stake)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "reclaim" -d 'Reclaim escrowed tokens (they debond)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "allow" -d 'Let --to withdraw up to --amount more from the signer\'s account (with --negative: that much less, down to nothing)'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "withdraw" -d 'Withdraw --amount from the account --to, within the allowance it granted the signer'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from network" -f -a "show" -d 'Show the network\'s parameters: stake thresholds, epochs, ParaTimes and their committees'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from tx" -f -a "submit" -d 'Submit a ParaTime transaction and wait until its round is finalized; prints the result'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from state" -f -a "get" -d 'Read a key of the finalized state with a proof; the proof is checked against the state root the node reports and, with --root, against a root you trust'
complete -c paratime-node -n "__fish_paratime_node_using_subcommand help; and __fish_seen_subcommand_from state" -f -a "verify" -d 'Verify a proof offline: prints the proven value; exit 1 if the proof does not hold'
