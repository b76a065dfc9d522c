"""The commands, a plain function each: ready arguments and output streams in, an exit code
out. `mirror.cli` maps options to them and errors to exit codes; tests call them directly.

    check.py      mirror check         the config, and the ECR repository of each image
    template.py   mirror template      the CloudFormation template ensure-repo deploys
    stack.py      mirror ensure-repo   create or update the stack of repositories
                  mirror delete-repo   delete it (repositories and images stay)
    schedule.py   mirror schedule-template, deploy-schedule   the scheduled sync job's stack
    sync.py       mirror sync          copy what changed, within the pull budget
    quota.py      mirror quota         Docker Hub's limit and what is left
    login.py      mirror login         ECR credentials for the Docker engine and config.json
    uri.py        mirror uri           the ECR reference that mirrors a Docker Hub reference
"""
