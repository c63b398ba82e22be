"""Initial schema: models, experts, versions, evaluations, lineage, tags and aliases.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 00:16:46.583477

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('base_models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.String(length=100), nullable=False),
    sa.Column('architecture', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('shapes', sa.JSON(), nullable=False),
    sa.Column('spectra_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_base_models')),
    sa.UniqueConstraint('name', name=op.f('uq_base_models_name'))
    )
    op.create_table('experts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('base_model_id', sa.Integer(), nullable=False),
    sa.Column('task', sa.String(length=100), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['base_model_id'], ['base_models.id'], name=op.f('fk_experts_base_model_id_base_models')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experts')),
    sa.UniqueConstraint('name', name=op.f('uq_experts_name'))
    )
    with op.batch_alter_table('experts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experts_base_model_id'), ['base_model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_experts_task'), ['task'], unique=False)

    op.create_table('model_aliases',
    sa.Column('alias', sa.String(length=100), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['base_models.id'], name=op.f('fk_model_aliases_model_id_base_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('alias', name=op.f('pk_model_aliases'))
    )
    with op.batch_alter_table('model_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_aliases_model_id'), ['model_id'], unique=False)

    op.create_table('expert_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('n_params', sa.Integer(), nullable=False),
    sa.Column('parametrization', sa.String(length=20), nullable=False),
    sa.Column('renormalize', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_expert_versions_expert_id_experts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_expert_versions')),
    sa.UniqueConstraint('expert_id', 'version', name='uq_expert_versions_expert_version')
    )
    with op.batch_alter_table('expert_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_expert_versions_blob_sha256'), ['blob_sha256'], unique=False)

    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('task', sa.String(length=100), nullable=False),
    sa.Column('metric', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('split', sa.String(length=50), nullable=True),
    sa.Column('n', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_latest', sa.Boolean(), nullable=False),
    sa.Column('is_latest_in_split', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['expert_versions.id'], name=op.f('fk_evaluations_version_id_expert_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluations'))
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index('ix_evaluations_rank', ['task', 'metric', 'is_latest', 'value', 'id'], unique=False)
        batch_op.create_index('ix_evaluations_rank_split', ['task', 'metric', 'split', 'is_latest_in_split', 'value', 'id'], unique=False)
        batch_op.create_index('ix_evaluations_version', ['version_id', 'task', 'metric'], unique=False)

    op.create_table('lineage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('relation', sa.String(length=40), nullable=False),
    sa.Column('weight', sa.Float(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['expert_versions.id'], name=op.f('fk_lineage_child_id_expert_versions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['expert_versions.id'], name=op.f('fk_lineage_parent_id_expert_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lineage'))
    )
    with op.batch_alter_table('lineage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lineage_child_id'), ['child_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lineage_parent_id'), ['parent_id'], unique=False)

    op.create_table('version_aliases',
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=100), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], name=op.f('fk_version_aliases_expert_id_experts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['expert_versions.id'], name=op.f('fk_version_aliases_version_id_expert_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('expert_id', 'alias', name=op.f('pk_version_aliases'))
    )
    with op.batch_alter_table('version_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_version_aliases_version_id'), ['version_id'], unique=False)

    op.create_table('version_tags',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['expert_versions.id'], name=op.f('fk_version_tags_version_id_expert_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'key', name=op.f('pk_version_tags'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('version_tags')
    with op.batch_alter_table('version_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_version_aliases_version_id'))

    op.drop_table('version_aliases')
    with op.batch_alter_table('lineage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lineage_parent_id'))
        batch_op.drop_index(batch_op.f('ix_lineage_child_id'))

    op.drop_table('lineage')
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index('ix_evaluations_version')
        batch_op.drop_index('ix_evaluations_rank_split')
        batch_op.drop_index('ix_evaluations_rank')

    op.drop_table('evaluations')
    with op.batch_alter_table('expert_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_expert_versions_blob_sha256'))

    op.drop_table('expert_versions')
    with op.batch_alter_table('model_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_aliases_model_id'))

    op.drop_table('model_aliases')
    with op.batch_alter_table('experts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_experts_task'))
        batch_op.drop_index(batch_op.f('ix_experts_base_model_id'))

    op.drop_table('experts')
    op.drop_table('base_models')
