# Terraform: a Kubernetes deployment, an ECS task (jsonencode and a heredoc), Docker images.
# image = "commented:1" is no image: a comment.

variable "registry" { type = string }

resource "kubernetes_deployment" "web" {
  metadata { name = "web" }
  spec {
    template {
      metadata { labels = { app = "web" } }
      spec {
        container {
          name  = "web"
          image = "nginx:1.25" // the proxy
        }
        container {
          name  = "app"
          image = "${var.registry}/app:1.0"
        }
      }
    }
  }
}

/* a block comment: image = "commented:2" */
resource "aws_ecs_task_definition" "api" {
  family = "api"
  container_definitions = jsonencode([
    { name = "api", image = "python:3.12-slim", essential = true },
    { name = "otel", image = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0" },
    { name = "cache", image = local.cache_image },
  ])
}

resource "aws_ecs_task_definition" "worker" {
  family                = "worker"
  container_definitions = <<-JSON
    [
      {"name": "worker", "image": "redis:7.2", "essential": true},
      {"name": "env", "image": "busybox:${var.busybox_tag}"}
    ]
  JSON
}

resource "docker_image" "db" {
  name = "postgres:16"
}

resource "docker_container" "db" {
  name  = "db"
  image = docker_image.db.image_id
}

resource "aws_instance" "bastion" {
  ami = "ami-0123456789abcdef0"
}

locals {
  cache_image = "redis:7.2"
  note        = "a \"quoted\" string: image = \"not-an-image:1\" ${upper("}")}"
}
