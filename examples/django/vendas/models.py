"""The shop: stores, products and orders. Django names their tables ``vendas_loja``,
``vendas_produto`` and ``vendas_pedido``; migration 0002 adds the view ``vendas_detalhe``
(an order with its store and category), which is what Billumy is allowed to read."""

from django.db import models


class Loja(models.Model):
    nome = models.CharField(max_length=100)
    cidade = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.nome


class Produto(models.Model):
    nome = models.CharField(max_length=100)
    categoria = models.CharField(max_length=50)
    preco = models.DecimalField(max_digits=10, decimal_places=2, null=True)

    def __str__(self) -> str:
        return self.nome


class Pedido(models.Model):
    class Canal(models.TextChoices):
        BALCAO = "balcao", "Balcão"
        SITE = "site", "Site"
        APP = "app", "App"

    class Status(models.TextChoices):
        PAGO = "pago", "Pago"
        CANCELADO = "cancelado", "Cancelado"

    loja = models.ForeignKey(Loja, on_delete=models.PROTECT, related_name="pedidos")
    produto = models.ForeignKey(Produto, on_delete=models.PROTECT, related_name="pedidos")
    criado_em = models.DateField()
    canal = models.CharField(max_length=20, choices=Canal.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PAGO)
    quantidade = models.PositiveIntegerField(default=1)
    valor = models.DecimalField(max_digits=12, decimal_places=2)
    cliente_email = models.EmailField()

    def __str__(self) -> str:
        return f"Pedido {self.pk}"
