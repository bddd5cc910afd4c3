"""The synthetic county: its approval departments, their matters and the fee catalogue.

东阳县 (code 371331) is invented: the prefix looks like a Shandong county but no real
county carries it, so nothing here describes a real department's workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

COUNTY_CODE = "371331"
COUNTY_NAME = "东阳县"


@dataclass(frozen=True)
class Department:
    """An approval department of the county (department code, full name)."""

    code: str
    name: str


@dataclass(frozen=True)
class Matter:
    """An approval matter (事项) as the department's business system describes it.

    `unit` is the raw source encoding: "G" or "1" for working days, "Z" for natural days.
    `site_inspection`, `weight` (relative daily volume) and `person_share` (share of
    applicants who are natural persons) only drive the demo generator.
    """

    code: str
    name: str
    dept_code: str
    promised_limit: int
    statutory_limit: int | None
    unit: str
    klass: str
    site_inspection: bool = False
    weight: int = 10
    person_share: float = 0.0


@dataclass(frozen=True)
class FeeItem:
    """A lawful item of the fee catalogue (行政事业性收费目录清单) the demo charges."""

    code: str
    name: str
    max_amount: Decimal
    min_amount: Decimal | None
    valid_from: date
    valid_to: date | None
    matter_codes: tuple[str, ...]
    charge_at_minimum: bool = False  # policy: enterprises are charged the lower bound


def _dept(n: int) -> str:
    return f"{COUNTY_CODE}{n:03d}"


DEPARTMENTS: tuple[Department, ...] = (
    Department(_dept(1), "东阳县市场监督管理局"),
    Department(_dept(2), "东阳县住房和城乡建设局"),
    Department(_dept(3), "东阳县卫生健康局"),
    Department(_dept(4), "东阳县自然资源和规划局"),
    Department(_dept(5), "东阳县交通运输局"),
    Department(_dept(6), "东阳县生态环境局"),
    Department(_dept(7), "东阳县教育和体育局"),
    Department(_dept(8), "东阳县人力资源和社会保障局"),
    Department(_dept(9), "东阳县民政局"),
    Department(_dept(10), "东阳县文化和旅游局"),
    Department(_dept(11), "东阳县农业农村局"),
    Department(_dept(12), "东阳县应急管理局"),
)

# Short codes used in staff ids, inspection sectors and the like.
DEPT_ABBR: dict[str, str] = {
    d.code: a
    for d, a in zip(
        DEPARTMENTS,
        ("SCJ", "ZJJ", "WJJ", "ZRJ", "JTJ", "HBJ", "JTY", "RSJ", "MZJ", "WLJ", "NYJ", "YJJ"),
        strict=True,
    )
}

G, Z, W1 = "G", "Z", "1"
GEN, IMM, MAJ = "general", "immediate", "major"


def _m(
    dept: int,
    code: str,
    name: str,
    promised: int,
    statutory: int | None,
    unit: str,
    klass: str,
    site: bool = False,
    weight: int = 10,
    person: float = 0.0,
) -> Matter:
    dc = _dept(dept)
    return Matter(f"{dc}-{code}", name, dc, promised, statutory, unit, klass, site, weight, person)


MATTERS: tuple[Matter, ...] = (
    # 市场监管局
    _m(1, "XK-001", "食品经营许可证核发", 10, 20, G, GEN, True, 60),
    _m(1, "XK-002", "食品生产许可证核发", 15, 20, G, MAJ, True, 8),
    _m(1, "XK-003", "药品零售企业经营许可", 15, 30, G, GEN, True, 8),
    _m(1, "QT-004", "个体工商户设立登记", 0, None, G, IMM, weight=90, person=1.0),
    _m(1, "XK-005", "特种设备使用登记", 5, 15, G, GEN, weight=12),
    # 住建局
    _m(2, "XK-001", "建筑工程施工许可证核发", 3, 7, G, GEN, True, 12),
    _m(2, "XK-002", "商品房预售许可", 5, 10, G, MAJ, True, 3),
    _m(2, "XK-003", "城市建筑垃圾处置核准", 5, 20, G, GEN, weight=6),
    _m(2, "XK-004", "燃气经营许可证核发", 10, 20, G, MAJ, True, 2),
    _m(2, "XK-005", "城市道路挖掘、占用许可", 7, 20, Z, GEN, True, 6),
    # 卫健局
    _m(3, "XK-001", "医疗机构执业登记", 20, 45, Z, MAJ, True, 4),
    _m(3, "XK-002", "公共场所卫生许可", 5, 20, G, GEN, True, 30),
    _m(3, "XK-003", "医师执业注册", 10, 20, G, GEN, weight=10, person=1.0),
    _m(3, "XK-004", "生活饮用水供水单位卫生许可", 10, 20, G, GEN, True, 2),
    _m(3, "XK-005", "母婴保健技术服务执业许可", 15, 20, G, GEN, weight=1),
    # 自然资源和规划局
    _m(4, "QR-001", "不动产首次登记", 5, 30, G, GEN, weight=45, person=0.5),
    _m(4, "QR-002", "不动产转移登记", 3, 30, G, GEN, weight=110, person=0.85),
    _m(4, "XK-003", "建设用地规划许可证核发", 10, 20, G, MAJ, weight=3),
    _m(4, "XK-004", "乡村建设规划许可证核发", 10, 20, G, GEN, True, 12, 1.0),
    _m(4, "GG-005", "不动产登记资料查询", 0, None, G, IMM, weight=60, person=0.8),
    # 交通运输局 (its system encodes working days as "1")
    _m(5, "XK-001", "道路货物运输经营许可", 10, 20, W1, GEN, weight=12, person=0.3),
    _m(5, "XK-002", "道路旅客运输经营许可", 15, 20, W1, MAJ, weight=2),
    _m(5, "XK-003", "出租汽车经营许可", 10, 20, W1, GEN, weight=2),
    _m(5, "XK-004", "公路超限运输许可", 2, 5, W1, GEN, weight=15),
    _m(5, "GG-005", "道路运输证配发", 0, None, W1, IMM, weight=40, person=0.4),
    # 生态环境局
    _m(6, "XK-001", "建设项目环境影响报告书审批", 30, 60, Z, MAJ, True, 2),
    _m(6, "XK-002", "建设项目环境影响报告表审批", 15, 30, Z, GEN, True, 6),
    _m(6, "XK-003", "排污许可证核发", 20, 30, G, MAJ, True, 5),
    # 教育和体育局
    _m(7, "XK-001", "民办学校办学许可", 60, 90, Z, MAJ, True, 1),
    _m(7, "XK-002", "校外培训机构办学许可", 20, 30, G, GEN, True, 1),
    _m(7, "QR-003", "教师资格认定", 20, None, G, GEN, weight=15, person=1.0),
    # 人社局
    _m(8, "XK-001", "人力资源服务许可", 10, 20, G, GEN, weight=2),
    _m(8, "XK-002", "劳务派遣经营许可", 10, 20, G, GEN, weight=2),
    _m(8, "XK-003", "企业实行不定时工作制和综合计算工时工作制审批", 10, 20, G, GEN, weight=4),
    _m(8, "GG-004", "社会保障卡申领", 0, None, G, IMM, weight=70, person=1.0),
    # 民政局
    _m(9, "QR-001", "社会团体成立登记", 30, 60, G, MAJ, weight=1),
    _m(9, "QR-002", "民办非企业单位成立登记", 30, 60, G, MAJ, weight=1),
    _m(9, "QR-003", "内地居民结婚登记", 0, None, G, IMM, weight=35, person=1.0),
    _m(9, "GG-004", "养老机构备案", 5, None, Z, GEN, weight=1),
    # 文化和旅游局
    _m(10, "XK-001", "娱乐场所经营许可", 10, 20, G, GEN, True, 2),
    _m(10, "XK-002", "互联网上网服务营业场所经营许可", 10, 20, G, GEN, True, 1),
    _m(10, "XK-003", "营业性演出审批", 3, 20, G, GEN, weight=4),
    # 农业农村局 (same vendor as 交通运输局: "1" for working days)
    _m(11, "XK-001", "农药经营许可", 10, 20, W1, GEN, True, 4),
    _m(11, "XK-002", "兽药经营许可证核发", 15, 30, W1, GEN, True, 2),
    _m(11, "XK-003", "动物防疫条件合格证核发", 10, 20, W1, GEN, True, 3),
    _m(11, "XK-004", "农作物种子生产经营许可", 10, 20, W1, GEN, weight=2),
    _m(11, "XK-005", "渔业捕捞许可", 5, 20, W1, GEN, weight=4, person=0.7),
    # 应急管理局
    _m(12, "XK-001", "危险化学品经营许可证核发", 15, 30, Z, MAJ, True, 3),
    _m(12, "XK-002", "烟花爆竹经营(零售)许可", 5, 20, G, GEN, True, 6),
    _m(12, "GG-003", "生产经营单位生产安全事故应急预案备案", 0, None, G, IMM, weight=5),
)

MATTER_BY_CODE: dict[str, Matter] = {m.code: m for m in MATTERS}

_REGISTRATION = (_dept(4) + "-QR-001", _dept(4) + "-QR-002")
_ALWAYS = date(2018, 1, 1)

DEMO_FEE_CATALOGUE: tuple[FeeItem, ...] = (
    FeeItem("FS-001", "不动产登记费(住宅)", Decimal("80.00"), None, _ALWAYS, None, _REGISTRATION),
    FeeItem(
        "FS-002", "不动产登记费(非住宅)", Decimal("550.00"), None, _ALWAYS, None, _REGISTRATION
    ),
    FeeItem("FS-003", "证书工本费", Decimal("10.00"), None, _ALWAYS, None, ()),
    FeeItem(
        "FS-004",
        "渔业资源增殖保护费",
        Decimal("3000.00"),
        Decimal("200.00"),
        _ALWAYS,
        None,
        (_dept(11) + "-XK-005",),
        charge_at_minimum=True,
    ),
    FeeItem(
        "FS-005",
        "城市道路占用、挖掘修复费",
        Decimal("50000.00"),
        None,
        _ALWAYS,
        None,
        (_dept(2) + "-XK-005",),
    ),
    FeeItem(
        "FS-006",
        "防空地下室易地建设费",
        Decimal("300000.00"),
        None,
        _ALWAYS,
        None,
        (_dept(2) + "-XK-001",),
    ),
    # abolished in the middle of the demo period: charges after 2025-06-30 are unlawful
    FeeItem(
        "FS-007",
        "特种设备检验检测费",
        Decimal("500.00"),
        None,
        _ALWAYS,
        date(2025, 6, 30),
        (_dept(1) + "-XK-005",),
    ),
)

# Codes a department might charge that no catalogue lists (乱收费).
UNKNOWN_FEES: tuple[tuple[str, str, int], ...] = (
    ("FS-900", "申请表格工本费", 500),
    ("FS-901", "加急服务费", 20000),
    ("QT-017", "资料审查费", 5000),
)
