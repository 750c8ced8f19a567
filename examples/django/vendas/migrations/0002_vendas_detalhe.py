"""The view Billumy reads: each order with its store's name and city and its product's
category (the same view as Billumy's source tests build)."""

from django.db import migrations

VIEW = """
CREATE VIEW vendas_detalhe AS
SELECT p.id, l.nome AS loja, l.cidade, pr.categoria, p.canal, p.status, p.criado_em,
       p.quantidade, p.valor
FROM vendas_pedido p JOIN vendas_loja l ON l.id = p.loja_id
JOIN vendas_produto pr ON pr.id = p.produto_id
"""


class Migration(migrations.Migration):
    dependencies = [("vendas", "0001_initial")]

    operations = [migrations.RunSQL(VIEW, reverse_sql="DROP VIEW vendas_detalhe")]
