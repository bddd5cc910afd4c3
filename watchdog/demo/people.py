"""Synthetic people and enterprises: staff names, credit codes, masked ID numbers."""

from __future__ import annotations

import random
from dataclasses import dataclass

from watchdog.demo.county import COUNTY_CODE, COUNTY_NAME

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
)
_ONE_CHAR = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚辉玲鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳"
_TWO_CHARS = (
    "建华建国秀英桂英秀兰志强晓燕海燕春梅立新红梅文博子涵雨轩"
    "浩然思远国庆海涛丽娟永刚卫东德明玉兰金凤"
)
_GIVEN = (*_ONE_CHAR, *(_TWO_CHARS[i : i + 2] for i in range(0, len(_TWO_CHARS), 2)))

# Two characters of a trade name (字号), chosen the way local firms choose them.
_TRADE = (
    "鑫盛宏达华泰恒通瑞丰金源兴隆信诚德汇嘉和顺发祥福康安海天明阳正大新宇博远鹏昌永富利佳沂蒙鲁润"
)
_SECTORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (sector, business words, departments most likely to inspect it)
    ("food", "食品 餐饮管理 饮品 粮油", ("001", "003")),
    ("build", "建筑工程 建材 建设集团 市政工程", ("002", "012", "008")),
    ("medical", "医药 医疗器械 大药房 口腔诊所", ("001", "003")),
    ("chem", "化工 新材料 涂料 燃气", ("006", "012", "001")),
    ("transport", "物流 运输 汽车运输 货运代理", ("005", "012")),
    ("agri", "农业科技 养殖 种业 农资", ("011", "006")),
    ("culture", "文化传媒 网络科技 娱乐 影视", ("010", "001")),
    ("industry", "机械制造 木业 纺织 板材", ("006", "012", "008", "001")),
    ("trade", "商贸 超市 百货 电子商务", ("001", "008")),
)
_SMALL_SHOPS = (
    "饭店", "超市", "便利店", "诊所", "五金店", "副食店", "理发店", "网吧", "药店", "农资店",
)  # fmt: skip
_SHOP_SECTOR = {"饭店": "food", "副食店": "food", "诊所": "medical", "药店": "medical"}
_SHOP_SECTOR |= {"网吧": "culture", "农资店": "agri", "五金店": "trade", "超市": "trade"}
_TOWNS = ["城关", "河阳", "青石", "马桥", "白沙", "柳林", "双庙", "清泉"]

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def staff_names(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    """`count` distinct Chinese names not in `taken` (which is updated)."""
    names: list[str] = []
    while len(names) < count:
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def uscc(rng: random.Random, kind: str = "91") -> str:
    """A 统一社会信用代码 with valid organisation-code and overall check characters."""
    body = "".join(rng.choice("0123456789") for _ in range(8))
    org_check = 11 - sum(int(c) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    org = body + ("X" if org_check == 10 else "0" if org_check == 11 else str(org_check))
    first17 = kind + COUNTY_CODE + org
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return first17 + _USCC_CHARS[(31 - total % 31) % 31]


def masked_id(rng: random.Random) -> str:
    """A resident ID number masked the way exchange databases publish it."""
    region = "3713" if rng.random() < 0.85 else rng.choice(("3708", "3714", "3211", "4101"))
    tail = f"{rng.randrange(1000):03d}" + rng.choice("0123456789X")
    return f"{region}**********{tail}"


@dataclass(frozen=True)
class Enterprise:
    """An enterprise of the county, applicant and inspection target."""

    code: str
    name: str
    sector: str
    inspectors: tuple[str, ...]  # department codes likely to inspect it


def enterprises(rng: random.Random, count: int) -> list[Enterprise]:
    """`count` enterprises with unique names and credit codes."""
    names: set[str] = set()
    codes: set[str] = set()
    out: list[Enterprise] = []
    sector_dept = {s: tuple(COUNTY_CODE + d for d in depts) for s, _, depts in _SECTORS}
    while len(out) < count:
        trade = rng.choice(_TRADE) + rng.choice(_TRADE)
        if rng.random() < 0.2:
            shop = rng.choice(_SMALL_SHOPS)
            sector = _SHOP_SECTOR.get(shop, "trade")
            name = f"{COUNTY_NAME}{rng.choice(_TOWNS)}{trade}{shop}"
            kind = "92"
        else:
            sector, words, _ = rng.choice(_SECTORS)
            business = rng.choice(words.split())
            prefix = COUNTY_NAME if rng.random() < 0.7 else "山东" + COUNTY_NAME[:2]
            name = f"{prefix}{trade}{business}有限公司"
            kind = "91"
        code = uscc(rng, kind)
        if name in names or code in codes:
            continue
        names.add(name)
        codes.add(code)
        out.append(Enterprise(code, name, sector, sector_dept[sector]))
    return out
