# the worker's task: its container definitions in Terraform
resource "aws_ecs_task_definition" "worker" {
  family = "worker"
  container_definitions = jsonencode([
    { name = "worker", image = "python:3.12-slim", essential = true },
    { name = "cache", image = "redis:${var.redis_version}" },
  ])
}
